//! An in-memory [`LicenseStore`] for unit tests and the benchmark, which measure the sync, not
//! DynamoDB: it keeps versions as the table does and counts what it writes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::activity::ObservedMap;
use super::store::{LISTED_IDS_PER_ITEM, LicenseStore, SCRATCH_PAIRS_PER_ITEM};
use super::{LicenseSummary, SyncCheckpoint, SyncRun};
use crate::ids::{BoxUserId, TenantId};
use crate::license::UserLicense;
use crate::storage::{StoreError, VersionedItem, VersionedOutcome};

/// An in-memory [`LicenseStore`] that counts what it writes.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    /// Users with their optimistic-lock version (kept together: one key per user, as in DynamoDB).
    users: HashMap<(TenantId, BoxUserId), (UserLicense, u64)>,
    summaries: HashMap<TenantId, (LicenseSummary, u64)>,
    checkpoints: HashMap<TenantId, SyncCheckpoint>,
    runs: Vec<(TenantId, SyncRun)>,
    scratch: HashMap<(TenantId, String), ObservedMap>,
    listed: HashMap<(TenantId, String, u32), Vec<String>>,
    items_written: u64,
}

impl MemoryState {
    /// The version a write over `current` (version, or `None` when absent) gets if it expects
    /// `expected` (see [`Table::put_versioned`]); `None`: a conflict.
    fn next_version(&mut self, current: Option<u64>, expected: Option<u64>) -> Option<u64> {
        let fits = match (current, expected) {
            (None, None) => true,
            (Some(current), Some(expected)) => current == expected,
            _ => false,
        };
        fits.then(|| {
            self.items_written += 1;
            current.unwrap_or(0) + 1
        })
    }
}

impl MemoryStore {
    /// Items written so far (users, summaries, checkpoints, runs, scratch).
    pub fn items_written(&self) -> u64 {
        self.lock().items_written
    }

    pub fn runs(&self, tenant: &TenantId) -> Vec<SyncRun> {
        self.lock()
            .runs
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LicenseStore for MemoryStore {
    async fn load_users(&self, tenant: &TenantId) -> Result<HashMap<BoxUserId, UserLicense>, StoreError> {
        Ok(self
            .lock()
            .users
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, id), (u, _))| (id.clone(), u.clone()))
            .collect())
    }
    async fn get_user(&self, tenant: &TenantId, box_user_id: &BoxUserId) -> Result<Option<UserLicense>, StoreError> {
        Ok(self
            .lock()
            .users
            .get(&(tenant.clone(), box_user_id.clone()))
            .map(|(u, _)| u.clone()))
    }
    async fn put_users(&self, tenant: &TenantId, users: &[UserLicense]) -> Result<usize, StoreError> {
        let mut state = self.lock();
        for u in users {
            // A plain write stamps a fresh version, as `Table::batch_put_stamped` does.
            let entry = state
                .users
                .entry((tenant.clone(), u.box_user_id.clone()))
                .or_insert_with(|| (u.clone(), 0));
            entry.0 = u.clone();
            entry.1 += 1;
        }
        state.items_written += users.len() as u64;
        Ok(users.len())
    }
    async fn get_summary(&self, tenant: &TenantId) -> Result<Option<LicenseSummary>, StoreError> {
        Ok(self.lock().summaries.get(tenant).map(|(s, _)| s.clone()))
    }
    async fn put_summary(&self, tenant: &TenantId, summary: &LicenseSummary) -> Result<(), StoreError> {
        let mut state = self.lock();
        let entry = state
            .summaries
            .entry(tenant.clone())
            .or_insert_with(|| (summary.clone(), 0));
        entry.0 = summary.clone();
        entry.1 += 1;
        state.items_written += 1;
        Ok(())
    }
    async fn get_user_versioned(
        &self,
        tenant: &TenantId,
        box_user_id: &BoxUserId,
    ) -> Result<Option<VersionedItem<UserLicense>>, StoreError> {
        let state = self.lock();
        let key = (tenant.clone(), box_user_id.clone());
        Ok(state.users.get(&key).map(|(u, version)| VersionedItem {
            item: u.clone(),
            version: *version,
        }))
    }
    async fn put_user_versioned(
        &self,
        tenant: &TenantId,
        user: &UserLicense,
        expected: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        let mut state = self.lock();
        let key = (tenant.clone(), user.box_user_id.clone());
        let current = state.users.get(&key).map(|(_, v)| *v);
        Ok(match state.next_version(current, expected) {
            Some(version) => {
                state.users.insert(key, (user.clone(), version));
                VersionedOutcome::Written { version }
            }
            None => VersionedOutcome::Conflict,
        })
    }
    async fn get_summary_versioned(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<VersionedItem<LicenseSummary>>, StoreError> {
        let state = self.lock();
        Ok(state.summaries.get(tenant).map(|(s, version)| VersionedItem {
            item: s.clone(),
            version: *version,
        }))
    }
    async fn put_summary_versioned(
        &self,
        tenant: &TenantId,
        summary: &LicenseSummary,
        expected: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        let mut state = self.lock();
        let current = state.summaries.get(tenant).map(|(_, v)| *v);
        Ok(match state.next_version(current, expected) {
            Some(version) => {
                state.summaries.insert(tenant.clone(), (summary.clone(), version));
                VersionedOutcome::Written { version }
            }
            None => VersionedOutcome::Conflict,
        })
    }
    async fn get_checkpoint(&self, tenant: &TenantId) -> Result<Option<SyncCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(tenant).cloned())
    }
    async fn put_checkpoint(&self, tenant: &TenantId, checkpoint: &SyncCheckpoint) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.checkpoints.insert(tenant.clone(), checkpoint.clone());
        state.items_written += 1;
        Ok(())
    }
    async fn put_run(&self, tenant: &TenantId, run: &SyncRun) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.runs.push((tenant.clone(), run.clone()));
        state.items_written += 1;
        Ok(())
    }
    async fn save_scratch(&self, tenant: &TenantId, run_id: &str, seen: &ObservedMap) -> Result<u32, StoreError> {
        let mut state = self.lock();
        state.scratch.insert((tenant.clone(), run_id.to_owned()), seen.clone());
        let chunks = seen.len().div_ceil(SCRATCH_PAIRS_PER_ITEM).max(1) as u32;
        state.items_written += u64::from(chunks);
        Ok(chunks)
    }
    async fn load_scratch(&self, tenant: &TenantId, run_id: &str, _chunks: u32) -> Result<ObservedMap, StoreError> {
        Ok(self
            .lock()
            .scratch
            .get(&(tenant.clone(), run_id.to_owned()))
            .cloned()
            .unwrap_or_default())
    }
    async fn save_listed(
        &self,
        tenant: &TenantId,
        run_id: &str,
        first: u32,
        ids: &[String],
    ) -> Result<u32, StoreError> {
        let mut state = self.lock();
        let mut written = 0;
        for (n, chunk) in ids.chunks(LISTED_IDS_PER_ITEM).enumerate() {
            state
                .listed
                .insert((tenant.clone(), run_id.to_owned(), first + n as u32), chunk.to_vec());
            written += 1;
        }
        state.items_written += u64::from(written);
        Ok(written)
    }
    async fn load_listed(
        &self,
        tenant: &TenantId,
        run_id: &str,
        chunks: u32,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let state = self.lock();
        let mut ids = std::collections::HashSet::new();
        for n in 0..chunks {
            let chunk = state
                .listed
                .get(&(tenant.clone(), run_id.to_owned(), n))
                .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("listing scratch item {n} is missing")))?;
            ids.extend(chunk.iter().cloned());
        }
        Ok(ids)
    }
}
