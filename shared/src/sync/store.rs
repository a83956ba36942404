//! Where a sync reads and writes license state: the [`LicenseStore`] port and its DynamoDB
//! adapter (the in-memory one is in `memory.rs`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BoxUserId, TenantId};
use crate::license::UserLicense;
use crate::storage::dynamo::IndexAttributes;
use crate::storage::schema::{
    SK_SUMMARY, SK_SYNC_CHECKPOINT, SK_SYNC_LISTED_PREFIX, SK_SYNC_PREFIX, SK_SYNC_SCRATCH_PREFIX, SK_USER_PREFIX,
    TTL_ATTRIBUTE, tenant_pk, user_sk,
};
use crate::storage::user_index::user_index;
use crate::storage::{Key, StoreError, Table, VersionedItem, VersionedOutcome};

use super::activity::{Observed, ObservedMap};
use super::{LicenseSummary, SyncCheckpoint, SyncRun};

/// Users read per query page when loading a tenant's state.
const LOAD_PAGE: u32 = 1000;
/// Scratch items hold at most this many `(user, time)` pairs (well under DynamoDB's 400 KB).
pub(super) const SCRATCH_PAIRS_PER_ITEM: usize = 8_000;
/// Listed ids per scratch item (Box ids are about 11 digits: about 120 KB).
pub(super) const LISTED_IDS_PER_ITEM: usize = 10_000;

#[async_trait]
pub trait LicenseStore: Send + Sync {
    /// Every stored user of the tenant, removed ones included.
    async fn load_users(&self, tenant: &TenantId) -> Result<HashMap<BoxUserId, UserLicense>, StoreError>;
    async fn get_user(&self, tenant: &TenantId, box_user_id: &BoxUserId) -> Result<Option<UserLicense>, StoreError>;
    /// Writes users (batched); returns how many items were written.
    async fn put_users(&self, tenant: &TenantId, users: &[UserLicense]) -> Result<usize, StoreError>;
    async fn get_summary(&self, tenant: &TenantId) -> Result<Option<LicenseSummary>, StoreError>;
    async fn put_summary(&self, tenant: &TenantId, summary: &LicenseSummary) -> Result<(), StoreError>;
    /// One user with its version, for [`LicenseStore::put_user_versioned`].
    async fn get_user_versioned(
        &self,
        tenant: &TenantId,
        box_user_id: &BoxUserId,
    ) -> Result<Option<VersionedItem<UserLicense>>, StoreError>;
    /// Writes one user if its stored version is still `expected` (`None`: it must not exist);
    /// a plain [`LicenseStore::put_users`] changes the version too.
    async fn put_user_versioned(
        &self,
        tenant: &TenantId,
        user: &UserLicense,
        expected: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError>;
    /// The summary with its version, for [`LicenseStore::put_summary_versioned`].
    async fn get_summary_versioned(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<VersionedItem<LicenseSummary>>, StoreError>;
    /// Writes the summary if its stored version is still `expected` (`None`: it must not exist).
    async fn put_summary_versioned(
        &self,
        tenant: &TenantId,
        summary: &LicenseSummary,
        expected: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError>;
    async fn get_checkpoint(&self, tenant: &TenantId) -> Result<Option<SyncCheckpoint>, StoreError>;
    async fn put_checkpoint(&self, tenant: &TenantId, checkpoint: &SyncCheckpoint) -> Result<(), StoreError>;
    /// Records a run in the history (expires after 90 days).
    async fn put_run(&self, tenant: &TenantId, run: &SyncRun) -> Result<(), StoreError>;
    /// Partial results of an interrupted run: each user's latest login and content activity so far.
    async fn save_scratch(&self, tenant: &TenantId, run_id: &str, seen: &ObservedMap) -> Result<u32, StoreError>;
    async fn load_scratch(&self, tenant: &TenantId, run_id: &str, chunks: u32) -> Result<ObservedMap, StoreError>;
    /// Records ids a cut-short listing got through, as scratch items numbered from `first`;
    /// returns how many items it wrote.
    async fn save_listed(&self, tenant: &TenantId, run_id: &str, first: u32, ids: &[String])
    -> Result<u32, StoreError>;
    /// Every id recorded by [`LicenseStore::save_listed`] in items `0..chunks`.
    async fn load_listed(
        &self,
        tenant: &TenantId,
        run_id: &str,
        chunks: u32,
    ) -> Result<std::collections::HashSet<String>, StoreError>;
}

/// Attempts of one versioned read-modify-write before giving up (each conflict means another
/// writer's change landed, so this many in a row is a storm, not a race).
pub const VERSIONED_ATTEMPTS: usize = 40;

/// A random pause after a version conflict ("full jitter"), its ceiling doubling with the attempt
/// up to 400 ms, so that writers racing for one item (the summary under a burst of changes) spread
/// out instead of colliding again in lockstep. Forty attempts take about 6 s in the worst case.
async fn after_conflict(attempt: usize) {
    let ceiling = (10u64 << attempt.min(6)).min(400);
    let wait = rand::random_range(1..=ceiling);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

/// Changes the stored summary by `change` without losing a concurrent writer's change: read it
/// with its version, change it, write it if the version still holds, else again with a fresh read.
/// `Ok(false)`: there is no summary yet (the first full sync counts everything).
pub async fn update_summary<S: LicenseStore + ?Sized>(
    store: &S,
    tenant: &TenantId,
    change: impl Fn(&mut LicenseSummary),
) -> Result<bool, StoreError> {
    for attempt in 0..VERSIONED_ATTEMPTS {
        if attempt > 0 {
            after_conflict(attempt).await;
        }
        let Some(VersionedItem { mut item, version }) = store.get_summary_versioned(tenant).await? else {
            return Ok(false);
        };
        change(&mut item);
        if let VersionedOutcome::Written { .. } = store.put_summary_versioned(tenant, &item, Some(version)).await? {
            return Ok(true);
        }
    }
    Err(StoreError::Unexpected(anyhow::anyhow!(
        "the summary kept changing under {VERSIONED_ATTEMPTS} attempts to adjust it"
    )))
}

/// Changes one stored user by `change` (given the fresh state; `None` leaves it as it is) without
/// losing a concurrent writer's change. Returns the state written (or found), `None` when the
/// user is not stored.
pub async fn update_user<S: LicenseStore + ?Sized>(
    store: &S,
    tenant: &TenantId,
    box_user_id: &BoxUserId,
    change: impl Fn(&UserLicense) -> Option<UserLicense>,
) -> Result<Option<(UserLicense, UserLicense)>, StoreError> {
    for attempt in 0..VERSIONED_ATTEMPTS {
        if attempt > 0 {
            after_conflict(attempt).await;
        }
        let Some(VersionedItem { item, version }) = store.get_user_versioned(tenant, box_user_id).await? else {
            return Ok(None);
        };
        let Some(next) = change(&item) else {
            return Ok(Some((item.clone(), item)));
        };
        if let VersionedOutcome::Written { .. } = store.put_user_versioned(tenant, &next, Some(version)).await? {
            return Ok(Some((item, next)));
        }
    }
    Err(StoreError::Unexpected(anyhow::anyhow!(
        "user {box_user_id} kept changing under {VERSIONED_ATTEMPTS} attempts to update it"
    )))
}

/// How long sync runs stay in the history.
pub const RUN_HISTORY_DAYS: i64 = 90;

#[derive(Serialize, Deserialize)]
struct ScratchItem {
    /// `id:login:content;…` (unix seconds, empty when not read) — compact, since a large tenant
    /// has 100,000+ users. Items from before content events were read hold `id:login`.
    pairs: String,
    #[serde(rename = "expires_at")]
    expires_at: i64,
}

fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a String, &'a Observed)>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = |at: Option<DateTime<Utc>>| at.map(|t| t.timestamp().to_string()).unwrap_or_default();
    for (id, seen) in pairs {
        if !out.is_empty() {
            out.push(';');
        }
        let _ = write!(out, "{id}:{}:{}", secs(seen.login), secs(seen.content));
    }
    out
}

fn decode_pairs(text: &str, into: &mut ObservedMap) -> Result<(), StoreError> {
    let malformed = || StoreError::Unexpected(anyhow::anyhow!("a sync scratch item is malformed"));
    let time = |field: Option<&str>| -> Result<Option<DateTime<Utc>>, StoreError> {
        match field {
            None | Some("") => Ok(None),
            Some(secs) => secs
                .parse()
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(Some)
                .ok_or_else(malformed),
        }
    };
    for entry in text.split(';').filter(|p| !p.is_empty()) {
        let mut fields = entry.split(':');
        let id = fields.next().filter(|id| !id.is_empty()).ok_or_else(malformed)?;
        let seen = Observed {
            login: time(fields.next())?,
            content: time(fields.next())?,
        };
        if fields.next().is_some() || seen == Observed::default() {
            return Err(malformed());
        }
        into.entry(id.to_owned()).or_default().merge(seen);
    }
    Ok(())
}

/// A version for an unconditional write (batch writes cannot have a condition), so a versioned
/// writer that read before it sees a conflict: the time in microseconds, far above the small counts of
/// versioned writes and different from any version read before.
fn write_stamp() -> u64 {
    u64::try_from(Utc::now().timestamp_micros()).unwrap_or(u64::MAX / 2)
}

fn scratch_sk(run_id: &str, n: u32) -> String {
    format!("{SK_SYNC_SCRATCH_PREFIX}{run_id}#{n:04}")
}

fn listed_sk(run_id: &str, n: u32) -> String {
    format!("{SK_SYNC_LISTED_PREFIX}{run_id}#{n:05}")
}

/// Ids listed so far by a run, `;`-separated (Box user ids are digits).
#[derive(Serialize, Deserialize)]
struct ListedItem {
    ids: String,
    #[serde(rename = "expires_at")]
    expires_at: i64,
}

#[async_trait]
impl LicenseStore for Table {
    async fn load_users(&self, tenant: &TenantId) -> Result<HashMap<BoxUserId, UserLicense>, StoreError> {
        let pk = tenant_pk(tenant);
        let mut users = HashMap::new();
        let mut cursor: Option<String> = None;
        // Bounded: 10,000 pages of 1,000 is 10 million users.
        for _ in 0..10_000 {
            let page = self
                .query_prefix::<UserLicense>(&pk, SK_USER_PREFIX, LOAD_PAGE, cursor.as_deref())
                .await?;
            users.extend(page.items.into_iter().map(|u| (u.box_user_id.clone(), u)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(users),
            }
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "more than 10,000 pages of users"
        )))
    }

    async fn get_user(&self, tenant: &TenantId, box_user_id: &BoxUserId) -> Result<Option<UserLicense>, StoreError> {
        self.get(&tenant_pk(tenant), &user_sk(box_user_id.as_str())).await
    }

    async fn put_users(&self, tenant: &TenantId, users: &[UserLicense]) -> Result<usize, StoreError> {
        let pk = tenant_pk(tenant);
        // Every user item carries its index keys (one pure function, as put_user_versioned does).
        let indexes: Vec<_> = users.iter().map(|u| user_index(tenant, u)).collect();
        let items: Vec<(Key, &UserLicense, IndexAttributes<'_>)> = users
            .iter()
            .zip(&indexes)
            .map(|(u, index)| {
                (
                    Key::new(&pk, user_sk(u.box_user_id.as_str())),
                    u,
                    index.attributes().to_vec(),
                )
            })
            .collect();
        Ok(self
            .batch_put_stamped_indexed(&items, Some(write_stamp()))
            .await?
            .items_written)
    }

    async fn get_summary(&self, tenant: &TenantId) -> Result<Option<LicenseSummary>, StoreError> {
        self.get(&tenant_pk(tenant), SK_SUMMARY).await
    }

    async fn put_summary(&self, tenant: &TenantId, summary: &LicenseSummary) -> Result<(), StoreError> {
        let item = (Key::new(tenant_pk(tenant), SK_SUMMARY), summary);
        self.batch_put_stamped(std::slice::from_ref(&item), Some(write_stamp()))
            .await
            .map(|_| ())
    }

    async fn get_user_versioned(
        &self,
        tenant: &TenantId,
        box_user_id: &BoxUserId,
    ) -> Result<Option<VersionedItem<UserLicense>>, StoreError> {
        self.get_versioned(&tenant_pk(tenant), &user_sk(box_user_id.as_str()))
            .await
    }

    async fn put_user_versioned(
        &self,
        tenant: &TenantId,
        user: &UserLicense,
        expected: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        let index = user_index(tenant, user);
        self.put_versioned_with(
            &tenant_pk(tenant),
            &user_sk(user.box_user_id.as_str()),
            user,
            &index.attributes(),
            expected,
        )
        .await
    }

    async fn get_summary_versioned(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<VersionedItem<LicenseSummary>>, StoreError> {
        self.get_versioned(&tenant_pk(tenant), SK_SUMMARY).await
    }

    async fn put_summary_versioned(
        &self,
        tenant: &TenantId,
        summary: &LicenseSummary,
        expected: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        self.put_versioned(&tenant_pk(tenant), SK_SUMMARY, summary, expected)
            .await
    }

    async fn get_checkpoint(&self, tenant: &TenantId) -> Result<Option<SyncCheckpoint>, StoreError> {
        self.get(&tenant_pk(tenant), SK_SYNC_CHECKPOINT).await
    }

    async fn put_checkpoint(&self, tenant: &TenantId, checkpoint: &SyncCheckpoint) -> Result<(), StoreError> {
        self.put(&tenant_pk(tenant), SK_SYNC_CHECKPOINT, checkpoint).await
    }

    async fn put_run(&self, tenant: &TenantId, run: &SyncRun) -> Result<(), StoreError> {
        #[derive(Serialize)]
        struct RunItem<'a> {
            #[serde(flatten)]
            run: &'a SyncRun,
            #[serde(rename = "expires_at")]
            expires_at: i64,
        }
        let sk = format!(
            "{SK_SYNC_PREFIX}{}#{}",
            run.started_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            run.run_id
        );
        let expires_at = (run.started_at + chrono::Duration::days(RUN_HISTORY_DAYS)).timestamp();
        debug_assert_eq!(TTL_ATTRIBUTE, "expires_at");
        self.put(&tenant_pk(tenant), &sk, &RunItem { run, expires_at }).await
    }

    async fn save_scratch(&self, tenant: &TenantId, run_id: &str, seen: &ObservedMap) -> Result<u32, StoreError> {
        let pk = tenant_pk(tenant);
        let expires_at = (Utc::now() + chrono::Duration::days(2)).timestamp();
        let entries: Vec<_> = seen.iter().collect();
        let items: Vec<(Key, ScratchItem)> = entries
            .chunks(SCRATCH_PAIRS_PER_ITEM)
            .enumerate()
            .map(|(n, chunk)| {
                (
                    Key::new(&pk, scratch_sk(run_id, n as u32)),
                    ScratchItem {
                        pairs: encode_pairs(chunk.iter().copied()),
                        expires_at,
                    },
                )
            })
            .collect();
        self.batch_put(&items).await?;
        Ok(items.len() as u32)
    }

    async fn load_scratch(&self, tenant: &TenantId, run_id: &str, chunks: u32) -> Result<ObservedMap, StoreError> {
        let pk = tenant_pk(tenant);
        let mut seen = HashMap::new();
        for n in 0..chunks {
            let item: ScratchItem = self.get(&pk, &scratch_sk(run_id, n)).await?.ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!("sync scratch item {n} of run {run_id} is missing"))
            })?;
            decode_pairs(&item.pairs, &mut seen)?;
        }
        Ok(seen)
    }

    async fn save_listed(
        &self,
        tenant: &TenantId,
        run_id: &str,
        first: u32,
        ids: &[String],
    ) -> Result<u32, StoreError> {
        let pk = tenant_pk(tenant);
        let expires_at = (Utc::now() + chrono::Duration::days(2)).timestamp();
        let items: Vec<(Key, ListedItem)> = ids
            .chunks(LISTED_IDS_PER_ITEM)
            .enumerate()
            .map(|(n, chunk)| {
                (
                    Key::new(&pk, listed_sk(run_id, first + n as u32)),
                    ListedItem {
                        ids: chunk.join(";"),
                        expires_at,
                    },
                )
            })
            .collect();
        self.batch_put(&items).await?;
        Ok(items.len() as u32)
    }

    async fn load_listed(
        &self,
        tenant: &TenantId,
        run_id: &str,
        chunks: u32,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let pk = tenant_pk(tenant);
        let mut ids = std::collections::HashSet::new();
        for n in 0..chunks {
            let item: ListedItem = self.get(&pk, &listed_sk(run_id, n)).await?.ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!("listing scratch item {n} of run {run_id} is missing"))
            })?;
            ids.extend(item.ids.split(';').filter(|id| !id.is_empty()).map(str::to_owned));
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::MemoryStore;

    fn user(id: &str, status: crate::boxapi::UserStatus) -> UserLicense {
        UserLicense {
            box_user_id: BoxUserId::parse(id).unwrap(),
            login: None,
            name: None,
            status,
            role: None,
            kind: crate::license::UserKind::Managed,
            created_at: None,
            owns_content: false,
            login_activity: crate::license::Activity::Never,
            content_activity: crate::license::Activity::NoData,
            first_seen_at: Utc::now(),
            last_seen_at: Utc::now(),
            removed_at: None,
        }
    }

    #[tokio::test]
    async fn a_plain_write_between_a_read_and_a_versioned_write_is_a_conflict() {
        use crate::boxapi::UserStatus;
        let store = MemoryStore::default();
        let tenant = TenantId::parse("acme").unwrap();
        let one = BoxUserId::parse("1").unwrap();
        store
            .put_users(&tenant, &[user("1", UserStatus::Active)])
            .await
            .unwrap();
        let read = store.get_user_versioned(&tenant, &one).await.unwrap().unwrap();
        // A sync's batch write lands in between (it cannot be conditional).
        store
            .put_users(&tenant, &[user("1", UserStatus::Active)])
            .await
            .unwrap();
        let outcome = store
            .put_user_versioned(&tenant, &user("1", UserStatus::Inactive), Some(read.version))
            .await
            .unwrap();
        assert_eq!(outcome, VersionedOutcome::Conflict);
        // Racing read-modify-writes each land once.
        let flips = futures::future::join_all((0..10).map(|_| {
            update_user(&store, &tenant, &one, |u| {
                Some(UserLicense {
                    name: Some(format!("{}x", u.name.clone().unwrap_or_default())),
                    ..u.clone()
                })
            })
        }))
        .await;
        assert!(flips.iter().all(Result::is_ok));
        let name = store.get_user(&tenant, &one).await.unwrap().unwrap().name.unwrap();
        assert_eq!(name.len(), 10, "no update lost: {name}");
    }

    #[test]
    fn scratch_pairs_round_trip_both_dates_and_keep_the_latest() {
        let t1 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t2 = DateTime::from_timestamp(1_700_000_500, 0).unwrap();
        let both = Observed {
            login: Some(t1),
            content: Some(t2),
        };
        let content_only = Observed {
            login: None,
            content: Some(t1),
        };
        let map: ObservedMap = [("11".to_string(), both), ("22".to_string(), content_only)].into();
        let text = encode_pairs(map.iter());
        let mut back = ObservedMap::from([(
            "11".to_string(),
            Observed {
                login: Some(t2),
                content: None,
            },
        )]);
        decode_pairs(&text, &mut back).unwrap();
        assert_eq!(
            back["11"],
            Observed {
                login: Some(t2),
                content: Some(t2)
            },
            "the later of each date wins"
        );
        assert_eq!(back["22"], content_only, "an unread date stays unread");
        for bad in ["11:notanumber", "11", "11::", ":5:6", "11:5:6:7"] {
            assert!(decode_pairs(bad, &mut back).is_err(), "{bad}");
        }
    }

    #[test]
    fn scratch_items_saved_before_content_events_read_as_logins() {
        let mut back = ObservedMap::new();
        decode_pairs("11:1700000000;22:1700000500", &mut back).unwrap();
        assert_eq!(back["11"].login, DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(back["11"].content, None);
        assert_eq!(back.len(), 2);
    }
}
