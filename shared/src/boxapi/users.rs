//! Users: who is connected, every user of the enterprise (marker paging), and the changes
//! seatsync makes (status, delete, content transfer, ending sessions).

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use serde_json::json;

use super::types::{TransferredFolder, USER_FIELDS, User, UserStatus, UsersPage};
use super::{BoxClient, BoxError, Effect};
use crate::ids::BoxUserId;

/// How [`BoxClient::delete_user`] deletes. `Default`: no e-mail to the user, and Box refuses while
/// the user owns content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Box e-mails the user that their account was deleted.
    pub notify: bool,
    /// Delete even if the user owns content (the content is deleted with them).
    pub force: bool,
}

/// How [`BoxClient::transfer_content`] moves content. `Default`: no e-mail to the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferOptions {
    /// Box e-mails the receiving user about the new folder.
    pub notify: bool,
}

/// Box's `user_type` filter. `Managed` includes app users (`is_platform_access_only`). There is
/// no `External`: Box returns an external user only to a `filter_term` equal to its login, so
/// external users cannot be listed (nor does `All` list them without such a term).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    All,
    Managed,
}

impl UserType {
    fn as_str(self) -> &'static str {
        match self {
            UserType::All => "all",
            UserType::Managed => "managed",
        }
    }
}

/// One page of a user listing and where the next one starts (`None`: this was the last).
#[derive(Debug)]
pub struct UserListPage {
    pub users: Vec<User>,
    pub next_marker: Option<String>,
}

/// Box's largest page of users.
pub const USERS_PAGE_LIMIT: u32 = 1000;
/// Loop guard: 20,000 pages of 1,000 is 20 million users, far past any enterprise.
const MAX_USER_PAGES: u32 = 20_000;

impl BoxClient {
    /// The user the token belongs to (the person who connected), with role and enterprise.
    #[tracing::instrument(skip_all)]
    pub async fn me(&self, token: &SecretString) -> Result<User, BoxError> {
        let url = self.endpoints.api("/2.0/users/me");
        let body = self
            .api_call("users.me", token, Effect::Idempotent, |http| {
                http.get(url.clone()).query(&[("fields", USER_FIELDS)])
            })
            .await?;
        Self::decode("users.me", &body)
    }

    /// One user by id.
    #[tracing::instrument(skip(self, token))]
    pub async fn user(&self, token: &SecretString, user_id: &BoxUserId) -> Result<User, BoxError> {
        let url = self.endpoints.api(&format!("/2.0/users/{user_id}"));
        let body = self
            .api_call("users.get", token, Effect::Idempotent, |http| {
                http.get(url.clone()).query(&[("fields", USER_FIELDS)])
            })
            .await?;
        Self::decode("users.get", &body)
    }

    /// Every user of the given type, each exactly once, with marker paging (`usemarker=true`,
    /// `limit=1000`): offset paging breaks past 10,000 users. Pages are fetched lazily, so
    /// memory stays at one page whatever the enterprise's size.
    pub fn users(&self, token: SecretString, user_type: UserType) -> BoxStream<'static, Result<User, BoxError>> {
        self.user_pages(token, user_type, None)
            .map_ok(|page| futures::stream::iter(page.users.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    /// The same listing a page at a time, from `marker` (a page's [`UserListPage::next_marker`]),
    /// so a listing cut short can go on where it stopped.
    pub fn user_pages(
        &self,
        token: SecretString,
        user_type: UserType,
        marker: Option<String>,
    ) -> BoxStream<'static, Result<UserListPage, BoxError>> {
        let client = self.clone();
        Box::pin(async_stream::try_stream! {
            let url = client.endpoints.api("/2.0/users");
            let limit = USERS_PAGE_LIMIT.to_string();
            let mut marker = marker.filter(|m| !m.is_empty());
            let mut pages = 0u32;
            loop {
                pages += 1;
                if pages > MAX_USER_PAGES {
                    Err(BoxError::Paging { operation: "users.list", detail: format!("more than {MAX_USER_PAGES} pages") })?;
                }
                let mut query = vec![
                    ("usemarker", "true"),
                    ("limit", limit.as_str()),
                    ("user_type", user_type.as_str()),
                    ("fields", USER_FIELDS),
                ];
                if let Some(m) = marker.as_deref() {
                    query.push(("marker", m));
                }
                let body = client.api_call("users.list", &token, Effect::Idempotent, |http| http.get(url.clone()).query(&query)).await?;
                let page: UsersPage = Self::decode("users.list", &body)?;
                tracing::debug!(page = pages, entries = page.entries.len(), "users page");
                let next = page.next_marker.filter(|m| !m.is_empty());
                if next.is_some() && next == marker {
                    Err(BoxError::Paging { operation: "users.list", detail: "Box returned the same marker twice".into() })?;
                }
                yield UserListPage { users: page.entries, next_marker: next.clone() };
                match next {
                    None => break,
                    Some(next) => marker = Some(next),
                }
            }
        })
    }

    /// Sets a user's status (`inactive` to deactivate, `active` to reactivate). Idempotent at
    /// Box, so retrying after an ambiguous 503 is safe.
    #[tracing::instrument(skip(self, token))]
    pub async fn set_user_status(
        &self,
        token: &SecretString,
        user_id: &BoxUserId,
        status: UserStatus,
    ) -> Result<User, BoxError> {
        let url = self.endpoints.api(&format!("/2.0/users/{user_id}"));
        let payload = json!({ "status": status.as_str() });
        let body = self
            .api_call("users.update", token, Effect::Idempotent, |http| {
                http.put(url.clone()).query(&[("fields", USER_FIELDS)]).json(&payload)
            })
            .await?;
        Self::decode("users.update", &body)
    }

    /// Deletes a user. Without [`DeleteOptions::force`], Box refuses while the user owns content:
    /// [`BoxError::OwnsContent`]. A retry after a lost answer that finds the user gone is success.
    #[tracing::instrument(skip(self, token))]
    pub async fn delete_user(
        &self,
        token: &SecretString,
        user_id: &BoxUserId,
        options: DeleteOptions,
    ) -> Result<(), BoxError> {
        let url = self.endpoints.api(&format!("/2.0/users/{user_id}"));
        let query = [("notify", bool_str(options.notify)), ("force", bool_str(options.force))];
        let answer = self
            .authorized("users.delete", token, Effect::Idempotent, |http| {
                http.delete(url.clone()).query(&query)
            })
            .await?;
        match answer.status {
            200..=299 => Ok(()),
            // An earlier attempt's answer was lost: the 404 is that delete having worked.
            404 if answer.after_ambiguous => Ok(()),
            status => Err(super::error::from_api_response(status, &answer.body)),
        }
    }

    /// Moves everything `from_user` owns into a new folder owned by `to_user`. Needs the
    /// `root_readwrite` scope. Large transfers go on at Box after this returns. Not retried after
    /// a 5xx or a lost answer (Box may have started the transfer): re-check ownership instead.
    #[tracing::instrument(skip(self, token))]
    pub async fn transfer_content(
        &self,
        token: &SecretString,
        from_user: &BoxUserId,
        to_user: &BoxUserId,
        options: TransferOptions,
    ) -> Result<TransferredFolder, BoxError> {
        let url = self.endpoints.api(&format!("/2.0/users/{from_user}/folders/0"));
        let payload = json!({ "owned_by": { "id": to_user } });
        let query = [("notify", bool_str(options.notify)), ("fields", "id,name")];
        let body = self
            .api_call("users.transfer_content", token, Effect::NotIdempotent, |http| {
                http.put(url.clone()).query(&query).json(&payload)
            })
            .await?;
        Self::decode("users.transfer_content", &body)
    }

    /// Ends the users' open Box sessions (Box does it asynchronously; 202).
    #[tracing::instrument(skip(self, token))]
    pub async fn terminate_sessions(&self, token: &SecretString, user_ids: &[&BoxUserId]) -> Result<(), BoxError> {
        let url = self.endpoints.api("/2.0/users/terminate_sessions");
        let payload = json!({ "user_ids": user_ids });
        self.api_call("users.terminate_sessions", token, Effect::Idempotent, |http| {
            http.post(url.clone()).json(&payload)
        })
        .await?;
        Ok(())
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A Box user id read from Box's own answers (an event's `created_by`, a listing) as the client's
/// methods take it: Box ids are digits, and anything else is refused here, as Box's answer to a
/// malformed id would be, so it never reaches a URL path.
pub fn parse_user_id(id: &str) -> Result<BoxUserId, BoxError> {
    BoxUserId::parse(id).map_err(|_| {
        BoxError::Rejected(super::BoxErrorDetail {
            status: 400,
            code: Some("invalid_user_id".into()),
            message: Some("a Box user id is 1 to 20 digits".into()),
            request_id: None,
        })
    })
}
