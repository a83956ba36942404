//! The `GET /licenses/users` query: the parameters as sent ([`UserParams`], read at the edge with
//! `ApiQuery`), the validated [`UserQuery`] with the format's limits, the query string of the
//! next page, and what a cursor is bound to.

use serde::Deserialize;

use super::{ActivityState, MAX_CURSOR_LEN, kind_str, role_str};
use crate::boxapi::Role;
use crate::ids::TenantId;
use crate::license::{ActivitySignal, UserKind};

/// Rows per JSON page at most, and by default.
pub const MAX_JSON_LIMIT: u32 = 1_000;
pub const DEFAULT_JSON_LIMIT: u32 = 100;
/// Rows per CSV response at most (and by default): a Lambda answer is at most 6 MB.
pub const MAX_CSV_LIMIT: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    LastActivity,
    Login,
    Name,
}

impl SortField {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::LastActivity => "last_activity",
            Self::Login => "login",
            Self::Name => "name",
        }
    }
}

/// `order=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    Desc,
}

/// `role=`: the roles a caller can filter on (Box's unknown roles are not among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleFilter {
    Admin,
    Coadmin,
    User,
}

impl From<RoleFilter> for Role {
    fn from(role: RoleFilter) -> Self {
        match role {
            RoleFilter::Admin => Role::Admin,
            RoleFilter::Coadmin => Role::Coadmin,
            RoleFilter::User => Role::User,
        }
    }
}

/// The `GET /licenses/users` query string as sent: each parameter typed, unknown ones refused
/// (a typo must not silently widen an export).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    pub state: Option<ActivityState>,
    pub inactive_days: Option<u16>,
    pub role: Option<RoleFilter>,
    pub kind: Option<UserKind>,
    pub sort: Option<SortField>,
    pub order: Option<Order>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// A login or name prefix, any case.
    pub q: Option<String>,
}

/// The longest search prefix accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 100;

/// A validated `GET /licenses/users` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub state: Option<ActivityState>,
    /// `None`: the tenant's inactivity threshold.
    pub inactive_days: Option<u16>,
    pub role: Option<Role>,
    pub kind: Option<UserKind>,
    pub sort: SortField,
    pub descending: bool,
    pub limit: u32,
    pub cursor: Option<String>,
    /// `q`, as the text keys write it (lowercase, without control characters): users whose login
    /// or name starts with it, in the order of the matching text (see [`super::sort_key`]).
    pub search: Option<String>,
}

/// Why a query was refused; names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct QueryError {
    pub field: &'static str,
    pub detail: String,
}

pub(super) fn invalid(field: &'static str, detail: impl Into<String>) -> QueryError {
    QueryError {
        field,
        detail: detail.into(),
    }
}

/// The form the list is answered in; each has its own page limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Json,
    Csv,
}

impl UserQuery {
    /// Checks the ranges of `params`; the CSV format has its own limits.
    pub fn from_params(params: UserParams, format: ListFormat) -> Result<Self, QueryError> {
        let (max, default) = match format {
            ListFormat::Csv => (MAX_CSV_LIMIT, MAX_CSV_LIMIT),
            ListFormat::Json => (MAX_JSON_LIMIT, DEFAULT_JSON_LIMIT),
        };
        if params.inactive_days.is_some_and(|d| !(1..=365).contains(&d)) {
            return Err(invalid(
                "inactive_days",
                "`inactive_days` must be a whole number from 1 to 365",
            ));
        }
        let limit = params.limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("`limit` must be a whole number from 1 to {max}"),
            ));
        }
        if params
            .cursor
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > MAX_CURSOR_LEN)
        {
            return Err(invalid("cursor", "`cursor` is not a cursor this API issued"));
        }
        let search = match params.q {
            None => None,
            Some(q) => {
                let prefix = crate::storage::schema::text_key_prefix(&q);
                if prefix.is_empty() || q.chars().count() > MAX_SEARCH_CHARS {
                    return Err(invalid(
                        "q",
                        format!("`q` must be 1 to {MAX_SEARCH_CHARS} characters of a login or name"),
                    ));
                }
                if params.sort.is_some() || params.order.is_some() {
                    return Err(invalid(
                        "q",
                        "a search (`q`) lists its matches in alphabetical order of the matching login or name; \
                         leave out `sort` and `order`",
                    ));
                }
                Some(prefix)
            }
        };
        Ok(UserQuery {
            state: params.state,
            inactive_days: params.inactive_days,
            role: params.role.map(Role::from),
            kind: params.kind,
            sort: params.sort.unwrap_or(SortField::LastActivity),
            descending: params.order == Some(Order::Desc),
            limit,
            cursor: params.cursor,
            search,
        })
    }

    /// The query string of the next page: the same parameters and this cursor.
    pub fn next_query(&self, cursor: &str) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = self.state {
            out.append_pair("state", state.as_str());
        }
        if let Some(days) = self.inactive_days {
            out.append_pair("inactive_days", &days.to_string());
        }
        if let Some(role) = self.role {
            out.append_pair("role", role_str(Some(role)));
        }
        if let Some(kind) = self.kind {
            out.append_pair("kind", kind_str(kind));
        }
        match &self.search {
            Some(q) => {
                out.append_pair("q", q);
            }
            None => {
                out.append_pair("sort", self.sort.as_str());
                out.append_pair("order", if self.descending { "desc" } else { "asc" });
            }
        }
        out.append_pair("limit", &self.limit.to_string());
        out.append_pair("cursor", cursor);
        out.finish()
    }

    /// What a cursor is bound to: the tenant, the tenant's activity `signal` (it decides what
    /// `inactive` and the activity order mean) and every parameter that changes the list (not
    /// the page size or the format).
    pub(super) fn binding(&self, tenant: &TenantId, signal: ActivitySignal) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}\0{}\0{}\0{}\0{}",
            tenant.as_str(),
            signal.as_str(),
            self.state.map_or("", ActivityState::as_str),
            self.inactive_days.map(|d| d.to_string()).unwrap_or_default(),
            self.role.map_or("", |r| role_str(Some(r))),
            self.kind.map_or("", kind_str),
            self.sort.as_str(),
            self.descending,
            self.search.as_deref().map_or(String::new(), |q| format!("q={q}")),
        )
    }
}

/// The query of `raw` as the edge and then the domain read it, or the field a refusal names.
#[cfg(test)]
pub(super) fn read(raw: &str, csv: bool) -> Result<UserQuery, String> {
    let params = crate::api::parse_query::<UserParams>(Some(raw)).map_err(|e| e.problem().field.unwrap_or_default())?;
    let format = if csv { ListFormat::Csv } else { ListFormat::Json };
    UserQuery::from_params(params, format).map_err(|e| e.field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(raw: &str, csv: bool) -> Result<UserQuery, String> {
        read(raw, csv)
    }

    #[test]
    fn queries_reject_unknown_repeated_and_out_of_range_parameters() {
        for (raw, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("limit=", "limit"),
            ("state=sleepy", "state"),
            ("state=", "state"),
            ("inactive_days=0", "inactive_days"),
            ("inactive_days=366", "inactive_days"),
            ("inactive_days=70000", "inactive_days"),
            ("role=owner", "role"),
            ("role=unknown", "role"),
            ("kind=robot", "kind"),
            ("sort=size", "sort"),
            ("order=up", "order"),
            ("cursor=", "cursor"),
            ("limit=1&limit=2", "limit"),
            ("tenant=other", "query"),
            ("q=", "q"),
            ("q=%07", "q"),
            ("q=ann&sort=login", "q"),
            ("q=ann&order=desc", "q"),
        ] {
            assert_eq!(query(raw, false).unwrap_err(), field, "{raw}");
        }
        assert_eq!(query("limit=10000", true).unwrap().limit, 10_000);
        assert_eq!(query("", false).unwrap().limit, DEFAULT_JSON_LIMIT);
        assert_eq!(query("", true).unwrap().limit, MAX_CSV_LIMIT);
        assert_eq!(query(&format!("q={}", "a".repeat(101)), false).unwrap_err(), "q");
    }

    #[test]
    fn a_search_is_kept_as_the_text_keys_write_it_and_binds_the_cursor() {
        let q = query("q=Ann%20L&state=inactive", false).unwrap();
        assert_eq!(q.search.as_deref(), Some("ann l"));
        assert_eq!(q.next_query("c"), "state=inactive&q=ann+l&limit=100&cursor=c");
        let tenant = TenantId::parse("t").unwrap();
        let other = query("q=ann&state=inactive", false).unwrap();
        assert_ne!(
            q.binding(&tenant, ActivitySignal::Any),
            other.binding(&tenant, ActivitySignal::Any)
        );
    }

    #[test]
    fn a_full_query_is_read_and_written_back_for_the_next_page() {
        let q = query(
            "state=inactive&inactive_days=30&role=coadmin&kind=app_user&sort=name&order=desc&limit=5",
            false,
        )
        .unwrap();
        assert_eq!(q.state, Some(ActivityState::Inactive));
        assert_eq!(q.role, Some(Role::Coadmin));
        assert_eq!(q.kind, Some(UserKind::AppUser));
        assert_eq!((q.sort, q.descending, q.limit), (SortField::Name, true, 5));
        assert_eq!(
            q.next_query("abc"),
            "state=inactive&inactive_days=30&role=coadmin&kind=app_user&sort=name&order=desc&limit=5&cursor=abc"
        );
        assert_eq!(
            query(&q.next_query("abc"), false).unwrap().cursor.as_deref(),
            Some("abc")
        );
    }
}
