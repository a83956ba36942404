//! Storage adapters: the single DynamoDB table ([`dynamo`]) and Secrets Manager ([`secrets`]),
//! both built from one SDK configuration with bounded timeouts and retries ([`aws`]).
//! The table's key design lives in [`schema`], defined once and checked against `infra/template.yaml`.

pub mod aws;
pub mod dynamo;
pub mod queue;
pub mod schema;
pub mod secrets;
pub mod user_index;

pub use aws::{aws_config_loader, load_aws_config};
pub use dynamo::{
    BatchStats, Gsi1Key, HeldLease, Indexed, Key, LeaseOutcome, Page, PutOutcome, StoreError, Table, UserIndexPage,
    UserIndexPosition, UserIndexRange, VersionedItem, VersionedOutcome,
};
pub use secrets::{BoxTokenSet, SecretError, SecretStore, TokenKind, Versioned, request_token_from};
