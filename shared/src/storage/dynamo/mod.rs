//! The single DynamoDB table: typed items (via `serde_dynamo`) stored under the keys of
//! [`schema`](super::schema).
//!
//! Races are values, not error strings: a conditional write that loses answers
//! [`PutOutcome::AlreadyExists`], [`VersionedOutcome::Conflict`] or [`LeaseOutcome::HeldBy`].
//! Items whose [`TTL_ATTRIBUTE`](super::schema::TTL_ATTRIBUTE) lies in the past read as absent,
//! because DynamoDB only deletes them within about two days. Page cursors are opaque to callers and
//! checked on the way back in, so a forged cursor is a clean [`StoreError::InvalidCursor`] and can
//! never leave its partition. Spans name the table and keys but never record item contents.
//!
//! One room per concern, all of them `impl Table`: `basics` (get, put, delete, query),
//! `conditional` (create-only, versioned and single-use writes, counters), `lease`, `batch`
//! (batch writes and their `UnprocessedItems` retry), `cursor` (page cursors), `user_query` (pages of the user GSIs) and `codec`
//! (items to and from attribute maps). `provision` creates the table for tests and local runs
//! (feature `test-support`).

mod basics;
mod batch;
mod codec;
mod conditional;
mod cursor;
mod lease;
#[cfg(feature = "test-support")]
mod provision;
mod user_query;

pub use basics::{MAX_PAGE_SIZE, Page};
pub use batch::{BATCH_WRITE_MAX, BatchStats, IndexAttributes, default_batch_retry};
pub use conditional::{PutOutcome, VersionedItem, VersionedOutcome};
pub use lease::{HeldLease, LeaseOutcome};
pub use user_query::{UserIndexPage, UserIndexPosition, UserIndexRange};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// What can go wrong talking to the table. Lost races are not errors; see the outcome types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB throttled the call and the SDK's bounded retries ran out.
    #[error("DynamoDB throttled {doing} and retries ran out")]
    Throttled { doing: &'static str },
    /// A page cursor that this adapter did not issue for this query.
    #[error("invalid page cursor")]
    InvalidCursor,
    /// An item's fields collide with an attribute that the adapter manages.
    #[error("attribute `{0}` is managed by the storage adapter and cannot be part of an item")]
    ReservedAttribute(&'static str),
    /// The same key appears twice in one batch (DynamoDB rejects that, and the result would be ambiguous).
    #[error("a batch contains the same key twice")]
    DuplicateKeyInBatch,
    /// `UnprocessedItems` was still not empty after the bounded number of attempts.
    #[error("batch write left {remaining} items unprocessed after {attempts} attempts")]
    Unprocessed { remaining: usize, attempts: u32 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl StoreError {
    /// Whether the same call may succeed later (a retryable failure, e.g. for a Lambda `Diagnostic`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unprocessed { .. })
    }
}

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// An item's keys in the GSI [`GSI1`](super::schema::GSI1). The adapter writes them beside the
/// item ([`Table::put_indexed`]) and hands them back on index reads ([`Table::query_gsi1_indexed`]),
/// so the domain's records never carry index fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gsi1Key {
    pub pk: String,
    pub sk: String,
}

impl Gsi1Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// An item read through the GSI, with its keys there.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexed<T> {
    pub index: Gsi1Key,
    pub item: T,
}

/// The application's table.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
    batch_retry: crate::retry::RetryPolicy,
}

impl Table {
    /// An adapter for an existing table.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            batch_retry: batch::default_batch_retry(),
        }
    }

    /// Replaces the backoff used for `UnprocessedItems`.
    pub fn with_batch_retry(mut self, batch_retry: crate::retry::RetryPolicy) -> Self {
        self.batch_retry = batch_retry;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Maps an SDK failure: throttling becomes [`StoreError::Throttled`]; the rest keeps its cause chain.
fn sdk_error<E, R>(err: SdkError<E, R>, doing: &'static str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if matches!(
        err.code(),
        Some("ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded")
    ) {
        return StoreError::Throttled { doing };
    }
    StoreError::Unexpected(anyhow::Error::new(err).context(doing))
}
