//! Content activity: which content event types a generated enterprise produces and how often, and
//! the file or folder each content event is about. Content events (uploads, previews, edits, ...)
//! are how people who work through Box Drive, mobile apps or integrations show up in `admin_logs`
//! when they have no recent interactive `LOGIN`, so the generator makes them the bulk of the stream,
//! as in a real tenant.

use rand::Rng;

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
/// reading (previews, downloads, access), then writing, then sharing and collaboration.
const WEIGHTS: [(EventKind, u32); 13] = [
    (EventKind::Preview, 26),
    (EventKind::Download, 18),
    (EventKind::Upload, 14),
    (EventKind::Edit, 10),
    (EventKind::ContentAccess, 9),
    (EventKind::Copy, 4),
    (EventKind::Move, 3),
    (EventKind::Rename, 3),
    (EventKind::Delete, 4),
    (EventKind::CommentCreate, 4),
    (EventKind::Share, 3),
    (EventKind::CollaborationInvite, 1),
    (EventKind::CollaborationAccept, 1),
];

/// A content kind for one of a user's events, by the weights above.
pub fn pick_kind(rng: &mut impl Rng) -> EventKind {
    let total: u32 = WEIGHTS.iter().map(|w| w.1).sum();
    let mut x = rng.random_range(0..total);
    for (kind, w) in WEIGHTS {
        if x < w {
            return kind;
        }
        x -= w;
    }
    EventKind::Preview
}

/// A content kind for an anonymous event: someone opening a shared link previews or downloads.
pub fn pick_anonymous_kind(rng: &mut impl Rng) -> EventKind {
    if rng.random_bool(0.7) {
        EventKind::Preview
    } else {
        EventKind::Download
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
    use crate::state::new_rng;

    #[test]
    fn every_picked_kind_is_content_and_previews_lead() {
        let mut rng = new_rng(1, 1);
        let mut previews = 0;
        let mut uploads = 0;
        for _ in 0..10_000 {
            let k = pick_kind(&mut rng);
            assert!(k.is_content(), "{k:?}");
            previews += usize::from(k == EventKind::Preview);
            uploads += usize::from(k == EventKind::Upload);
        }
        assert!(
            previews > uploads && uploads > 1_000,
            "{previews} previews, {uploads} uploads"
        );
        assert!((0..100).all(|_| pick_anonymous_kind(&mut rng).is_content()));
    }

    #[test]
    fn an_item_is_stable_for_a_seed_and_sequence_number() {
        assert_eq!(item(7, 42, EventKind::Upload), item(7, 42, EventKind::Upload));
        assert_ne!(item(7, 42, EventKind::Upload).id, item(8, 42, EventKind::Upload).id);
        let files = (0..1_000).filter(|&s| !item(7, s, EventKind::Edit).is_folder).count();
        assert!(files > 800, "{files} of 1000 edits are on files");
    }
}
