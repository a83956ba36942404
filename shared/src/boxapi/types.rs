//! The parts of Box's schemas that seatsync reads. Unknown fields are ignored and unknown enum
//! values map to `Unknown`, so a new Box value never breaks a sync.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The user fields every listing asks for: with `fields=`, Box returns only the mini fields
/// (`id`, `type`, `name`, `login`) plus those named, so everything the product stores is listed.
pub const USER_FIELDS: &str =
    "name,login,status,role,created_at,modified_at,space_used,is_platform_access_only,enterprise";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Inactive,
    CannotDeleteEdit,
    CannotDeleteEditUpload,
    #[serde(other)]
    Unknown,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::CannotDeleteEdit => "cannot_delete_edit",
            UserStatus::CannotDeleteEditUpload => "cannot_delete_edit_upload",
            UserStatus::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Coadmin,
    User,
    #[serde(other)]
    Unknown,
}

impl Role {
    /// Admins and co-admins administer the enterprise; seatsync never deactivates them.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Admin | Role::Coadmin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseMini {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A Box user as listed with [`USER_FIELDS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default = "unknown_status")]
    pub status: UserStatus,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub modified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub space_used: Option<i64>,
    /// App users (service identities of custom apps) hold no paid seat.
    #[serde(default)]
    pub is_platform_access_only: bool,
    #[serde(default)]
    pub enterprise: Option<EnterpriseMini>,
}

fn unknown_status() -> UserStatus {
    UserStatus::Unknown
}

/// A page of `GET /2.0/users` (schema `Users`).
#[derive(Debug, Deserialize)]
pub(crate) struct UsersPage {
    #[serde(default)]
    pub entries: Vec<User>,
    #[serde(default)]
    pub next_marker: Option<String>,
}

/// The part of `User--Mini` an event's `created_by` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMini {
    pub id: String,
    #[serde(default)]
    pub login: Option<String>,
}

/// Box's anonymous user id in events (`created_by.id == "2"`).
pub const ANONYMOUS_USER_ID: &str = "2";

/// One admin-log event, trimmed to what last-login tracking needs (memory stays flat for
/// millions of events: `additional_details` and `source` are not kept).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    pub event_id: String,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub created_by: Option<UserMini>,
    #[serde(default)]
    pub ip_address: Option<String>,
}

/// `GET /2.0/events` (schema `Events`). `next_stream_position` is a string or a number.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsPageBody {
    #[serde(default)]
    pub next_stream_position: Option<serde_json::Value>,
    #[serde(default)]
    pub entries: Vec<Event>,
}

/// The token endpoint's `AccessToken` answer, before its secrets are wrapped.
#[derive(Deserialize)]
pub(crate) struct AccessTokenBody {
    pub access_token: String,
    /// Any JSON number: a huge or fractional one is clamped, not refused (see `oauth.rs`).
    #[serde(default)]
    pub expires_in: Option<serde_json::Number>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// The result of a folder transfer (schema `Folder--Full`), trimmed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TransferredFolder {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}
