//! OAuth 2.0 with Box: the authorize URL, the authorization-code exchange, refresh, the
//! client-credentials grant and revocation. Token-endpoint calls are never retried here:
//! a code is single-use and lives 30 s, and a refresh that Box processed but whose answer was
//! lost has already spent the refresh token — the caller (the token provider) decides.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{BoxClient, BoxError, Effect, RetryPolicy, error, types::AccessTokenBody};
use crate::ids::EnterpriseId;

/// Scopes seatsync asks for.
pub mod scopes {
    /// Manage managed users (admin or co-admin token).
    pub const MANAGE_MANAGED_USERS: &str = "manage_managed_users";
    pub const MANAGE_GROUPS: &str = "manage_groups";
    /// The enterprise event stream (last logins) and reports.
    pub const MANAGE_ENTERPRISE_PROPERTIES: &str = "manage_enterprise_properties";
    /// Needed to transfer a user's content before deleting them.
    pub const ROOT_READWRITE: &str = "root_readwrite";
    /// What every connection asks for.
    pub const BASE: [&str; 3] = [MANAGE_MANAGED_USERS, MANAGE_GROUPS, MANAGE_ENTERPRISE_PROPERTIES];
}

/// The Box app's client id and secret.
#[derive(Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// What the token endpoint granted.
pub struct TokenGrant {
    pub access_token: SecretString,
    /// Absent for the client-credentials grant.
    pub refresh_token: Option<SecretString>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl BoxClient {
    /// The URL to send the connecting admin's browser to. `state` must be unguessable and bound
    /// to that browser; the URL therefore is as sensitive as the state and is not logged.
    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &SecretString, scopes: &[&str]) -> Url {
        let mut url = self.endpoints.account("/api/oauth2/authorize");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state.expose_secret())
            .append_pair("scope", &scopes.join(" "));
        url
    }

    /// Exchanges an authorization code, once: no retry (the code is single-use and lives 30 s).
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(
        &self,
        app: &AppCredentials,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenGrant, BoxError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
            ("redirect_uri", redirect_uri),
        ];
        self.token_call("oauth2.token.authorization_code", &form).await
    }

    /// Spends `refresh_token` for a new pair. Box rotates refresh tokens: the old one is dead
    /// after this call whatever its outcome, so this is never retried blindly.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, app: &AppCredentials, refresh_token: &SecretString) -> Result<TokenGrant, BoxError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
        ];
        self.token_call("oauth2.token.refresh_token", &form).await
    }

    /// Client-credentials grant for an enterprise that authorized the app in its Admin Console.
    /// Safe to retry (it spends nothing), so transient failures are retried.
    #[tracing::instrument(skip_all, fields(enterprise_id = %enterprise_id))]
    pub async fn client_credentials(
        &self,
        app: &AppCredentials,
        enterprise_id: &EnterpriseId,
    ) -> Result<TokenGrant, BoxError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", enterprise_id.as_str()),
        ];
        self.token_call_with(
            "oauth2.token.client_credentials",
            &form,
            &self.options.retry,
            Effect::Idempotent,
        )
        .await
    }

    /// Revokes a token (access or refresh) and with it the pair. Box answers 200 also for a
    /// token that is already invalid, so revoking twice is harmless.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(&self, app: &AppCredentials, token: &SecretString) -> Result<(), BoxError> {
        let form = [
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
            ("token", token.expose_secret()),
        ];
        let url = self.endpoints.api("/oauth2/revoke");
        let answer = self
            .execute("oauth2.revoke", &self.options.retry, Effect::Idempotent, |http| {
                http.post(url.clone()).form(&form)
            })
            .await?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(error::from_oauth_response(answer.status, &answer.body))
        }
    }

    async fn token_call(&self, operation: &'static str, form: &[(&str, &str)]) -> Result<TokenGrant, BoxError> {
        // Spending a code or a refresh token must not happen twice, not even on a 429.
        self.token_call_with(operation, form, &RetryPolicy::never(), Effect::NotIdempotent)
            .await
    }

    async fn token_call_with(
        &self,
        operation: &'static str,
        form: &[(&str, &str)],
        policy: &RetryPolicy,
        effect: Effect,
    ) -> Result<TokenGrant, BoxError> {
        let url = self.endpoints.api("/oauth2/token");
        let issued_at = Utc::now();
        let answer = self
            .execute(operation, policy, effect, |http| http.post(url.clone()).form(form))
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(error::from_oauth_response(answer.status, &answer.body));
        }
        // Decode without echoing the body: it holds the tokens.
        let body: AccessTokenBody = serde_json::from_slice(&answer.body).map_err(|e| BoxError::Decode {
            operation,
            detail: format!(
                "token answer is not an AccessToken ({:?} error at column {})",
                e.classify(),
                e.column()
            ),
        })?;
        let lifetime = token_lifetime_secs(body.expires_in.as_ref());
        Ok(TokenGrant {
            access_token: SecretString::from(body.access_token),
            refresh_token: body.refresh_token.filter(|t| !t.is_empty()).map(SecretString::from),
            expires_at: issued_at + ChronoDuration::seconds(lifetime),
        })
    }
}

/// The longest access-token life believed: Box's are an hour; a longer claim is capped.
const MAX_TOKEN_LIFETIME_SECS: i64 = 366 * 24 * 3600;

/// Seconds an access token lives, from the answer's `expires_in`: absent is Box's hour, and any
/// number (negative, fractional, past `i64` or `u64`) lands in `0..=MAX_TOKEN_LIFETIME_SECS`. The
/// grant is already spent when this runs: refusing the answer would lose the rotated refresh token.
fn token_lifetime_secs(expires_in: Option<&serde_json::Number>) -> i64 {
    let Some(n) = expires_in else { return 3600 };
    let secs = if let Some(i) = n.as_i64() {
        i
    } else if n.as_u64().is_some() {
        i64::MAX
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() && f > 0.0 => f.min(MAX_TOKEN_LIFETIME_SECS as f64) as i64,
            _ => 0,
        }
    };
    secs.clamp(0, MAX_TOKEN_LIFETIME_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_expires_in_gives_a_lifetime_in_range() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(token_lifetime_secs(None), 3600);
        assert_eq!(token_lifetime_secs(Some(&n("3600"))), 3600);
        assert_eq!(token_lifetime_secs(Some(&n("-1"))), 0);
        assert_eq!(token_lifetime_secs(Some(&n("12.7"))), 12);
        for huge in ["18446744073709551615", "9223372036854775807", "1e300"] {
            assert_eq!(token_lifetime_secs(Some(&n(huge))), MAX_TOKEN_LIFETIME_SECS, "{huge}");
        }
    }
    use crate::boxapi::{BoxEndpoints, ClientOptions};

    #[test]
    fn authorize_url_carries_exact_redirect_uri_and_scopes() {
        let client = BoxClient::new(
            BoxEndpoints::new("https://api.box.com", "https://account.box.com").unwrap(),
            ClientOptions::default(),
        )
        .unwrap();
        let url = client.authorize_url(
            "cid",
            "https://app.example/oauth/box/callback",
            &SecretString::from("st"),
            &scopes::BASE,
        );
        assert_eq!(url.path(), "/api/oauth2/authorize");
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["redirect_uri"], "https://app.example/oauth/box/callback");
        assert_eq!(
            pairs["scope"],
            "manage_managed_users manage_groups manage_enterprise_properties"
        );
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["state"], "st");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let app = AppCredentials {
            client_id: "cid".into(),
            client_secret: SecretString::from("topsecret"),
        };
        let grant = TokenGrant {
            access_token: SecretString::from("acc-123"),
            refresh_token: Some(SecretString::from("ref-456")),
            expires_at: Utc::now(),
        };
        let text = format!("{app:?} {grant:?}");
        for secret in ["topsecret", "acc-123", "ref-456"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
