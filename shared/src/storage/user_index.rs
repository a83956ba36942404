//! The index attributes of a user item (see the user-index table in [`schema`](super::schema)):
//! one pure function of the stored [`UserLicense`], added to the item by every user write, so an
//! item and its index entries can never disagree.

use crate::boxapi::Role;
use crate::boxapi::UserStatus;
use crate::ids::TenantId;
use crate::license::{ActivitySignal, UserLicense};
use crate::storage::schema::{
    K_ANY, K_CONTENT, K_LOGIN, K_LOGINNAME, K_NAME, K_NAMESEARCH, USERS_BY_ANY, USERS_BY_CONTENT_AT, USERS_BY_LOGIN_AT,
    USERS_BY_LOGINNAME, USERS_BY_NAME, USERS_BY_NAME_SEARCH, USERS_BY_ROLE, USERS_RPK, USERS_UPK, UserSegment,
    activity_key, text_key, text_key_prefix, users_rpk, users_upk,
};

/// The version of the index attributes [`user_index`] writes. Bump it with any change to them:
/// a tenant whose license summary names an older version gets every user rewritten, once, by its
/// next full sync (items written before a version lack its attributes, and DynamoDB indexes no
/// item without them). 1: the seven GSIs of issue 12.
pub const USER_INDEX_VERSION: u32 = 1;

/// One of the seven user GSIs (see [`USER_INDEXES`](crate::storage::schema::USER_INDEXES)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserIndex {
    /// [`USERS_BY_ANY`]: strongest activity, oldest first.
    Any,
    /// [`USERS_BY_LOGIN_AT`]: last login, oldest first.
    LoginAt,
    /// [`USERS_BY_CONTENT_AT`]: last content activity (the login where unknown), oldest first.
    ContentAt,
    /// [`USERS_BY_LOGINNAME`]: lowercase login.
    LoginName,
    /// [`USERS_BY_NAME`]: lowercase name.
    Name,
    /// [`USERS_BY_NAME_SEARCH`]: names a search reads (sparse).
    NameSearch,
    /// [`USERS_BY_ROLE`]: admins and co-admins, by lowercase login.
    Role,
}

impl UserIndex {
    /// The activity index that orders by `signal`.
    pub fn by_signal(signal: ActivitySignal) -> Self {
        match signal {
            ActivitySignal::Any => UserIndex::Any,
            ActivitySignal::Login => UserIndex::LoginAt,
            ActivitySignal::Content => UserIndex::ContentAt,
        }
    }

    /// The GSI's name.
    pub fn name(self) -> &'static str {
        match self {
            UserIndex::Any => USERS_BY_ANY,
            UserIndex::LoginAt => USERS_BY_LOGIN_AT,
            UserIndex::ContentAt => USERS_BY_CONTENT_AT,
            UserIndex::LoginName => USERS_BY_LOGINNAME,
            UserIndex::Name => USERS_BY_NAME,
            UserIndex::NameSearch => USERS_BY_NAME_SEARCH,
            UserIndex::Role => USERS_BY_ROLE,
        }
    }

    /// The GSI's partition key attribute.
    pub fn partition_attribute(self) -> &'static str {
        match self {
            UserIndex::Role => USERS_RPK,
            _ => USERS_UPK,
        }
    }

    /// The GSI's sort key attribute.
    pub fn sort_attribute(self) -> &'static str {
        match self {
            UserIndex::Any => K_ANY,
            UserIndex::LoginAt => K_LOGIN,
            UserIndex::ContentAt => K_CONTENT,
            UserIndex::LoginName | UserIndex::Role => K_LOGINNAME,
            UserIndex::Name => K_NAME,
            UserIndex::NameSearch => K_NAMESEARCH,
        }
    }

    /// This index's sort key in `keys`.
    pub fn sort_key(self, keys: &UserIndexKeys) -> &str {
        match self {
            UserIndex::Any => &keys.k_any,
            UserIndex::LoginAt => &keys.k_login,
            UserIndex::ContentAt => &keys.k_content,
            UserIndex::LoginName | UserIndex::Role => &keys.k_loginname,
            UserIndex::Name => &keys.k_name,
            // Read only from the index, where every entry has it.
            UserIndex::NameSearch => keys.k_namesearch.as_deref().unwrap_or(&keys.k_name),
        }
    }
}

/// The index attributes of one user item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserIndexKeys {
    /// `USERS#<tenant>#<segment>`: the partition of every user GSI.
    pub upk: String,
    pub k_any: String,
    pub k_login: String,
    pub k_content: String,
    pub k_loginname: String,
    pub k_name: String,
    /// `k_name`, where the name finds the user by a prefix the login does not; absent otherwise.
    pub k_namesearch: Option<String>,
    /// `USERS#<tenant>#role:<role>` for admins and co-admins; absent (so not in the role index) otherwise.
    pub rpk: Option<String>,
}

impl UserIndexKeys {
    /// As `(attribute, value)` pairs, in the order of [`USER_INDEX_ATTRIBUTES`](super::schema::USER_INDEX_ATTRIBUTES),
    /// without `rpk` where the user has none. (Every user write replaces the whole item, so an
    /// attribute left out here is gone from the item, and the user from that index.)
    pub fn attributes(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            (USERS_UPK, self.upk.as_str()),
            (K_ANY, &self.k_any),
            (K_LOGIN, &self.k_login),
            (K_CONTENT, &self.k_content),
            (K_LOGINNAME, &self.k_loginname),
            (K_NAME, &self.k_name),
        ];
        if let Some(k) = &self.k_namesearch {
            out.push((K_NAMESEARCH, k));
        }
        if let Some(rpk) = &self.rpk {
            out.push((USERS_RPK, rpk));
        }
        out
    }
}

/// Which user-index partition `user` belongs to.
pub fn user_segment(user: &UserLicense) -> UserSegment {
    if user.removed_at.is_some() {
        UserSegment::Removed
    } else if user.holds_seat() && user.status != UserStatus::Inactive {
        UserSegment::Seat
    } else if user.holds_seat() {
        UserSegment::Deactivated
    } else {
        UserSegment::Other
    }
}

/// Whether some search prefix finds the user by `name` and not by `login`: not when the name (as
/// text keys write it) is empty or a prefix of the login, since every prefix of it then is one of
/// the login too.
pub fn name_adds_reach(login: Option<&str>, name: Option<&str>) -> bool {
    let name = text_key_prefix(name.unwrap_or_default());
    !name.is_empty() && !text_key_prefix(login.unwrap_or_default()).starts_with(&name)
}

/// The index attributes of `user`, a user of `tenant`.
pub fn user_index(tenant: &TenantId, user: &UserLicense) -> UserIndexKeys {
    let id = user.box_user_id.as_str();
    let signals = user.signals();
    UserIndexKeys {
        upk: users_upk(tenant, user_segment(user)),
        k_any: activity_key(&signals.by_signal(ActivitySignal::Any), id),
        k_login: activity_key(&signals.by_signal(ActivitySignal::Login), id),
        k_content: activity_key(&signals.by_signal(ActivitySignal::Content), id),
        k_loginname: text_key(user.login.as_deref(), id),
        k_name: text_key(user.name.as_deref(), id),
        k_namesearch: name_adds_reach(user.login.as_deref(), user.name.as_deref())
            .then(|| text_key(user.name.as_deref(), id)),
        rpk: match user.role {
            Some(Role::Admin) => Some(users_rpk(tenant, "admin")),
            Some(Role::Coadmin) => Some(users_rpk(tenant, "coadmin")),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BoxUserId;
    use crate::license::{Activity, ActivityOrigin, UserKind};
    use crate::storage::schema::USER_INDEX_SEP;
    use chrono::{TimeZone, Utc};

    fn user(
        id: u32,
        login: Option<String>,
        name: Option<String>,
        login_at: Activity,
        content: Activity,
    ) -> UserLicense {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        UserLicense {
            box_user_id: BoxUserId::parse(&id.to_string()).unwrap(),
            login,
            name,
            status: UserStatus::Active,
            role: None,
            kind: UserKind::Managed,
            created_at: None,
            owns_content: false,
            login_activity: login_at,
            content_activity: content,
            first_seen_at: now,
            last_seen_at: now,
            removed_at: None,
        }
    }

    #[test]
    fn index_keys_have_the_documented_formats() {
        let tenant = TenantId::parse("acme").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::microseconds(89);
        let u = user(
            42,
            Some("Ann.Lee@Example.com".into()),
            Some("Ann\u{7}Lee".into()),
            Activity::seen(at, ActivityOrigin::BoxLogin),
            Activity::NoData,
        );
        let keys = user_index(&tenant, &u);
        assert_eq!(keys.upk, "USERS#acme#seat");
        assert_eq!(keys.k_login, format!("22026-03-04T05:06:07.000089Z{USER_INDEX_SEP}42"));
        assert_eq!(keys.k_any, keys.k_login, "content unknown: the login says all");
        assert_eq!(keys.k_content, keys.k_login, "content unknown: the login stands in");
        assert_eq!(
            keys.k_loginname,
            format!("ann lee@example com{USER_INDEX_SEP}42"),
            "lowercase, `.` as a space"
        );
        assert_eq!(
            keys.k_name,
            format!("annlee{USER_INDEX_SEP}42"),
            "control characters stripped"
        );
        let never = user(7, None, None, Activity::Never, Activity::Never);
        let keys = user_index(&tenant, &never);
        assert_eq!(keys.k_any, format!("0{USER_INDEX_SEP}7"));
        assert_eq!(keys.k_name, format!("{USER_INDEX_SEP}7"));
        let no_data = user(8, None, None, Activity::NoData, Activity::NoData);
        assert_eq!(user_index(&tenant, &no_data).k_login, format!("1{USER_INDEX_SEP}8"));
        assert_eq!(keys.rpk, None, "no role: not in the role index");
        assert!(!keys.attributes().iter().any(|(name, _)| *name == USERS_RPK));
        let mut admin = never.clone();
        admin.role = Some(Role::Coadmin);
        let keys = user_index(&tenant, &admin);
        assert_eq!(keys.rpk.as_deref(), Some("USERS#acme#role:coadmin"));
        assert!(keys.attributes().contains(&(USERS_RPK, "USERS#acme#role:coadmin")));
        admin.role = Some(Role::User);
        assert_eq!(user_index(&tenant, &admin).rpk, None);
    }

    #[test]
    fn only_names_that_find_what_the_login_does_not_are_in_the_search_index() {
        let tenant = TenantId::parse("acme").unwrap();
        let with = |login: &str, name: Option<&str>| {
            user(
                1,
                Some(login.into()),
                name.map(str::to_owned),
                Activity::Never,
                Activity::Never,
            )
        };
        for (login, name, indexed) in [
            ("michael.smith.42@example.com", Some("Michael Smith"), false),
            ("ann_lee@example.com", Some("Ann-Lee"), false),
            ("ann@example.com", Some("Ann Lee"), true),
            ("jdoe@example.com", Some("John Doe"), true),
            ("smith@example.com", Some("Smith, John"), true),
            ("x@example.com", None, false),
            ("x@example.com", Some(""), false),
        ] {
            let keys = user_index(&tenant, &with(login, name));
            assert_eq!(keys.k_namesearch.is_some(), indexed, "{login} / {name:?}");
            if indexed {
                assert_eq!(keys.k_namesearch.as_deref(), Some(keys.k_name.as_str()));
            }
        }
    }

    #[test]
    fn segments_follow_seat_status_and_removal() {
        let tenant = TenantId::parse("acme").unwrap();
        let mut u = user(1, None, None, Activity::Never, Activity::Never);
        assert_eq!(user_index(&tenant, &u).upk, "USERS#acme#seat");
        u.status = UserStatus::Inactive;
        assert_eq!(user_index(&tenant, &u).upk, "USERS#acme#deactivated");
        u.removed_at = Some(Utc::now());
        assert_eq!(user_index(&tenant, &u).upk, "USERS#acme#removed");
        u.removed_at = None;
        u.kind = UserKind::AppUser;
        assert_eq!(user_index(&tenant, &u).upk, "USERS#acme#other");
        u.kind = UserKind::External;
        u.status = UserStatus::Active;
        assert_eq!(user_index(&tenant, &u).upk, "USERS#acme#other");
    }
}
