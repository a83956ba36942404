//! OAuth 2.0: the authorize page (consent, or an immediate redirect), the token endpoint
//! (authorization code, refresh with rotation, client credentials) and revocation.

use serde_json::json;
use sim_core::Reply;

use super::{Ctx, Shared, oauth_error};
use crate::state::{Subject, default_scopes};

fn html(status: u16, title: &str, body: &str) -> Reply {
    Reply::text(
        status,
        "text/html; charset=utf-8",
        format!("<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{q}")
}

pub(super) fn authorize(shared: &Shared, ctx: &Ctx) -> Reply {
    let cfg = &shared.config;
    if ctx.q("client_id") != Some(cfg.client_id.as_str()) {
        return html(400, "Invalid client", "<p>invalid_client: unknown client_id</p>");
    }
    let redirect = match (ctx.q("redirect_uri"), &cfg.redirect_uri) {
        (Some(r), Some(want)) if r == want => r.to_string(),
        (Some(_), Some(_)) => return html(400, "Invalid redirect", "<p>redirect_uri_mismatch</p>"),
        (Some(r), None) => r.to_string(),
        (None, Some(want)) => want.clone(),
        (None, None) => return html(400, "Invalid request", "<p>redirect_uri is required</p>"),
    };
    let state_param = ctx.q("state").unwrap_or("").to_string();
    if ctx.q("response_type") != Some("code") {
        return Reply::empty(302).header(
            "location",
            with_query(
                &redirect,
                &[("error", "unsupported_response_type"), ("state", &state_param)],
            ),
        );
    }
    let scopes: Vec<String> = match ctx.q("scope") {
        Some(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_string).collect(),
        _ => default_scopes(),
    };
    let consent_given = cfg.auto_consent || ctx.q("sim_consent") == Some("1");
    if !consent_given {
        let mut params: Vec<(String, String)> = ctx.query.clone();
        params.push(("sim_consent".into(), "1".into()));
        let href = with_query(
            "/api/oauth2/authorize",
            &params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        );
        return html(
            200,
            "Grant access to Box",
            &format!(
                "<p>The app wants: {}</p><a id=\"grant\" href=\"{}\">Grant access to Box</a>",
                escape(&scopes.join(" ")),
                escape(&href)
            ),
        );
    }
    let mut st = shared.st();
    if st.deny_consent {
        return Reply::empty(302).header(
            "location",
            with_query(
                &redirect,
                &[
                    ("error", "access_denied"),
                    ("error_description", "The user denied access to your application"),
                    ("state", &state_param),
                ],
            ),
        );
    }
    let user = st.consenting_user.clone();
    let code = st.issue_code(&user, scopes, Some(redirect.clone()), ctx.now);
    Reply::empty(302).header(
        "location",
        with_query(&redirect, &[("code", &code), ("state", &state_param)]),
    )
}

pub(super) fn token(shared: &Shared, ctx: &Ctx) -> Reply {
    let cfg = &shared.config;
    let form = ctx.form();
    let get = |k: &str| form.get(k).map(String::as_str);
    let Some(grant) = get("grant_type") else {
        return oauth_error("invalid_request", "Invalid grant_type parameter or parameter missing");
    };
    let client_ok =
        get("client_id") == Some(cfg.client_id.as_str()) && get("client_secret") == Some(cfg.client_secret.as_str());
    match grant {
        "authorization_code" | "refresh_token" | "client_credentials" => {}
        _ => {
            return oauth_error(
                "unsupported_grant_type",
                "Invalid grant_type parameter or parameter missing",
            );
        }
    }
    if !client_ok {
        return oauth_error("invalid_client", "The client credentials are invalid");
    }
    let mut st = shared.st();
    let ttl = cfg.access_token_ttl.as_secs();
    let pair_reply = |pair: crate::TokenPair| {
        Reply::json(
            200,
            json!({
                "access_token": pair.access_token,
                "expires_in": ttl,
                "token_type": "bearer",
                "restricted_to": [],
                "refresh_token": pair.refresh_token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            }),
        )
    };
    match grant {
        "authorization_code" => {
            let Some(code) = get("code") else {
                return oauth_error("invalid_request", "Missing parameter: \"code\"");
            };
            // A code is single-use: any exchange attempt consumes it.
            let Some(grant) = st.codes.remove(code) else {
                return oauth_error("invalid_grant", "Auth code doesn't exist or is invalid for the client");
            };
            if grant.expires_at <= ctx.now {
                return oauth_error("invalid_grant", "The authorization code has expired");
            }
            if let Some(r) = get("redirect_uri")
                && (cfg.redirect_uri.as_deref().is_some_and(|w| w != r)
                    || grant.redirect_uri.as_deref().is_some_and(|g| g != r))
            {
                return oauth_error(
                    "invalid_grant",
                    "The redirect_uri does not match the one used to authorize",
                );
            }
            if st.user_index(&grant.user_id).is_none() {
                return oauth_error("invalid_grant", "The user no longer exists");
            }
            let pair = st.issue_pair(Subject::User(grant.user_id), grant.scopes, ctx.now);
            pair_reply(pair)
        }
        "refresh_token" => {
            let Some(rt) = get("refresh_token") else {
                return oauth_error("invalid_request", "Missing parameter: \"refresh_token\"");
            };
            let Some(old) = st.refresh.remove(rt) else {
                return oauth_error("invalid_grant", "Invalid refresh token");
            };
            // Rotation: the old access token dies with its refresh token.
            st.access.remove(&old.access);
            if old.expires_at <= ctx.now {
                return oauth_error("invalid_grant", "Refresh token has expired");
            }
            let pair = st.issue_pair(old.subject, old.scopes, ctx.now);
            pair_reply(pair)
        }
        _ => {
            if !cfg.ccg_enabled {
                return oauth_error(
                    "unauthorized_client",
                    "The grant type is unauthorized for this client_id",
                );
            }
            if get("box_subject_type") != Some("enterprise") {
                return oauth_error("invalid_request", "box_subject_type must be enterprise");
            }
            if get("box_subject_id") != Some(st.enterprise_id.as_str()) {
                return oauth_error("invalid_grant", "Grant credentials are invalid");
            }
            let access = st.issue_access_only(Subject::ServiceAccount, default_scopes(), ctx.now);
            Reply::json(
                200,
                json!({
                    "access_token": access,
                    "expires_in": ttl,
                    "token_type": "bearer",
                    "restricted_to": [],
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                }),
            )
        }
    }
}

pub(super) fn revoke(shared: &Shared, ctx: &Ctx) -> Reply {
    let cfg = &shared.config;
    let form = ctx.form();
    if form.get("client_id") != Some(&cfg.client_id) || form.get("client_secret") != Some(&cfg.client_secret) {
        return oauth_error("invalid_client", "The client credentials are invalid");
    }
    let Some(token) = form.get("token") else {
        return oauth_error("invalid_request", "Missing parameter: \"token\"");
    };
    shared.st().revoke(token);
    Reply::empty(200)
}
