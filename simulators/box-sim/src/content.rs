//! Content activity: which content event types a generated enterprise produces and how often, and
//! the file or folder each content event is about. Content events (uploads, previews, edits, ...)
//! are how people who work through Box Drive, mobile apps or integrations show up in `admin_logs`
//! when they have no recent interactive `LOGIN`, so the generator makes them the bulk of the stream,
//! as in a real tenant.

use crate::state::{EventKind, splitmix};

/// Content events per login for a user who both logs in and works on content: a working day holds
/// one login and a handful of previews, downloads and edits.
pub const PER_LOGIN: f64 = 10.0;

/// Share of all content events done by the anonymous user (id 2): shared-link previews and
/// downloads by people outside the enterprise.
pub const ANONYMOUS_SHARE: f64 = 0.02;

/// A drive-only user has had no LOGIN for longer than this (their logins, if any, are older).
pub const DRIVE_ONLY_QUIET_DAYS: i64 = 200;

/// Content kinds and their weights, roughly as an enterprise's event stream shows them: mostly
/// reading (previews, downloads), then writing, then sharing and collaboration. `CONTENT_ACCESS`
/// is served when a test records one but not generated: Box's OpenAPI file does not let a request
/// filter by it, so the sync does not ask for it, and the ground truth must be what it can read.
const WEIGHTS: [(EventKind, u32); 12] = [
    (EventKind::Preview, 35),
    (EventKind::Download, 18),
    (EventKind::Upload, 14),
    (EventKind::Edit, 10),
    (EventKind::Copy, 4),
    (EventKind::Move, 3),
    (EventKind::Rename, 3),
    (EventKind::Delete, 4),
    (EventKind::CommentCreate, 4),
    (EventKind::Share, 3),
    (EventKind::CollaborationInvite, 1),
    (EventKind::CollaborationAccept, 1),
];

/// The weights laid out as 100 slots, so a kind is one table look-up: the generator draws
/// millions of them, in debug builds too.
const TABLE: [EventKind; 100] = {
    let mut t = [EventKind::Preview; 100];
    let (mut i, mut slot) = (0, 0);
    while i < WEIGHTS.len() {
        let mut w = 0;
        while w < WEIGHTS[i].1 {
            t[slot] = WEIGHTS[i].0;
            slot += 1;
            w += 1;
        }
        i += 1;
    }
    assert!(slot == 100, "the weights add up to 100");
    t
};

/// A content kind for one of a user's events, from a random number, by the weights above.
pub fn kind_for(random: u64) -> EventKind {
    TABLE[(random % 100) as usize]
}

/// A content kind for an anonymous event: someone opening a shared link previews or downloads.
pub fn anonymous_kind_for(random: u64) -> EventKind {
    if random % 10 < 7 {
        EventKind::Preview
    } else {
        EventKind::Download
    }
}

/// A cheap, seeded random stream for the millions of content events (ChaCha is slow in the debug
/// builds that every workspace test uses). `next` gives independent-looking 64-bit numbers.
pub struct Draws {
    key: u64,
    n: u64,
}

impl Draws {
    pub fn new(seed: u64) -> Draws {
        Draws {
            key: splitmix(seed ^ 0x5EED_C0A7),
            n: 0,
        }
    }
    pub fn next(&mut self) -> u64 {
        self.n += 1;
        splitmix(self.key ^ self.n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    /// A time in `lo..hi` (`hi > lo`).
    pub fn time(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

/// The file or folder a content event is about, derived from the seed and the event's sequence
/// number so the stream needs no per-event storage for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub is_folder: bool,
    pub id: String,
    pub name: String,
    pub parent_id: String,
    pub parent_name: String,
}

const FILES: &[&str] = &[
    "Q3 forecast",
    "Board deck",
    "Contract",
    "Onboarding guide",
    "Invoice",
    "Roadmap",
    "Meeting notes",
    "Budget",
    "Design review",
    "Sales pipeline",
];
const EXTENSIONS: &[&str] = &["pdf", "docx", "xlsx", "pptx", "png", "txt"];
const FOLDERS: &[&str] = &["Finance", "Legal", "Marketing", "Engineering", "HR", "Sales", "Shared"];

pub fn item(seed: u64, seq: u32, kind: EventKind) -> Item {
    let h = splitmix(seed ^ 0xC0A7_E417 ^ ((seq as u64) << 16));
    // Collaboration and sharing are mostly about folders; the rest mostly about files.
    let folder_share = match kind {
        EventKind::CollaborationInvite | EventKind::CollaborationAccept | EventKind::Share => 6,
        _ => 1,
    };
    let is_folder = h % 10 < folder_share;
    // A few thousand items per enterprise, so the same file shows up in many events.
    let item_no = (h >> 8) % 5_000;
    let parent_no = item_no % FOLDERS.len() as u64;
    let folder_base = 100_000_000_000 + splitmix(seed ^ 11) % 1_000_000_000;
    let file_base = 1_000_000_000_000 + splitmix(seed ^ 13) % 1_000_000_000;
    let name = if is_folder {
        format!("{} {}", FOLDERS[(item_no / 7) as usize % FOLDERS.len()], item_no)
    } else {
        format!(
            "{} {}.{}",
            FILES[(item_no / 7) as usize % FILES.len()],
            item_no,
            EXTENSIONS[(item_no / 3) as usize % EXTENSIONS.len()]
        )
    };
    Item {
        is_folder,
        id: (if is_folder { folder_base + 1_000 } else { file_base } + item_no).to_string(),
        name,
        parent_id: (folder_base + parent_no).to_string(),
        parent_name: FOLDERS[parent_no as usize].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_kind_is_content_and_previews_lead() {
        let mut draws = Draws::new(1);
        let mut previews = 0;
        let mut uploads = 0;
        for _ in 0..10_000 {
            let k = kind_for(draws.next());
            assert!(k.is_content(), "{k:?}");
            previews += usize::from(k == EventKind::Preview);
            uploads += usize::from(k == EventKind::Upload);
        }
        assert!(
            previews > uploads && uploads > 1_000,
            "{previews} previews, {uploads} uploads"
        );
        assert!((0..100).all(|_| anonymous_kind_for(draws.next()).is_content()));
        assert!((0..1_000).all(|_| (10..20).contains(&draws.time(10, 20))));
    }

    #[test]
    fn an_item_is_stable_for_a_seed_and_sequence_number() {
        assert_eq!(item(7, 42, EventKind::Upload), item(7, 42, EventKind::Upload));
        assert_ne!(item(7, 42, EventKind::Upload).id, item(8, 42, EventKind::Upload).id);
        let files = (0..1_000).filter(|&s| !item(7, s, EventKind::Edit).is_folder).count();
        assert!(files > 800, "{files} of 1000 edits are on files");
    }
}
