//! The audit trail: one record per attempted change to a Box user — done, refused, failed or
//! planned (dry run) — kept newest first under the tenant (`AUDIT#<time>#<id>`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::boxapi::UserStatus;
use crate::ids::{BoxUserId, TenantId};
use crate::storage::schema::{SK_AUDIT_PREFIX, tenant_pk};
use crate::storage::{Page, StoreError, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Deactivate,
    Reactivate,
    Delete,
    /// Content moved to another user, then the user deleted.
    TransferAndDelete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Done,
    /// A safety rail said no; Box was not called.
    Refused,
    /// Box or storage failed; `detail` says how.
    Failed,
    /// A dry run: what would have been done.
    Planned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub at: DateTime<Utc>,
    pub tenant: TenantId,
    /// The seatsync identity (`sub`) who asked.
    pub actor: String,
    pub action: AuditAction,
    pub target_box_user_id: BoxUserId,
    pub target_login: Option<String>,
    pub before_status: Option<UserStatus>,
    pub after_status: Option<UserStatus>,
    /// Why the change was asked for.
    pub reason: Option<String>,
    /// API Gateway's request id.
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub outcome: AuditOutcome,
    /// The refusal or failure, in words.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// The sort key: time first, so a query reads the trail in order.
    pub fn sort_key(&self) -> String {
        format!(
            "{SK_AUDIT_PREFIX}{}#{}",
            self.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            self.id
        )
    }
}

/// Appends and reads audit records.
#[derive(Debug, Clone)]
pub struct AuditLog {
    table: Table,
}

impl AuditLog {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Writes a record; records are never overwritten (a new id every time).
    pub async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        match self
            .table
            .put_new(&tenant_pk(&record.tenant), &record.sort_key(), record)
            .await?
        {
            crate::storage::PutOutcome::Created => Ok(()),
            crate::storage::PutOutcome::AlreadyExists => Err(StoreError::Unexpected(anyhow::anyhow!(
                "an audit record with this id already exists"
            ))),
        }
    }

    /// The tenant's trail, newest first.
    pub async fn list(
        &self,
        tenant: &TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>, StoreError> {
        self.table
            .query_prefix_desc(&tenant_pk(tenant), SK_AUDIT_PREFIX, limit, cursor)
            .await
    }
}
