//! Google's OAuth token endpoint for service accounts: the RS256 assertion (RFC 7523 `jwt-bearer`)
//! verified against the configured public key, domain-wide delegation (`sub`, delegated scopes),
//! and the bearer tokens it hands out.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::{Google, JWT_BEARER};
use crate::server::{Reply, Req, lock};

pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(status, json!({"error": error, "error_description": description}))
}

pub(super) fn invalid_grant(description: &str) -> Reply {
    oauth_error(400, "invalid_grant", description)
}

impl Google {
    fn token_uri(&self) -> String {
        format!(
            "http://{}/token",
            self.addr.get().copied().unwrap_or(([127, 0, 0, 1], 0).into())
        )
    }

    /// The claims of an assertion whose RS256 signature verifies against the configured key.
    fn verified_claims(&self, assertion: &str) -> Result<Value, Reply> {
        let malformed = || invalid_grant("Invalid JWT: malformed assertion.");
        let mut parts = assertion.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let json = |part: &str| -> Option<Value> { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok() };
        let header_json = json(header).ok_or_else(malformed)?;
        if header_json["alg"] != "RS256" {
            return Err(invalid_grant("Invalid JWT: the algorithm must be RS256."));
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        let signed = &assertion[..header.len() + 1 + claims.len()];
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key_der)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
        json(claims).ok_or_else(malformed)
    }

    pub(super) fn token(&self, req: &Req) -> Reply {
        let form = req.form();
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if get("grant_type") != JWT_BEARER {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {}", get("grant_type")),
            );
        }
        let claims = match self.verified_claims(get("assertion")) {
            Ok(c) => c,
            Err(reply) => return reply,
        };
        if claims["iss"] != self.config.service_account_email.as_str() {
            return invalid_grant("Invalid grant: account not found");
        }
        if claims["aud"] != self.token_uri().as_str() {
            return invalid_grant("Invalid JWT: Failed audience check.");
        }
        let now = Utc::now().timestamp();
        let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
        let timely = matches!((iat, exp), (Some(iat), Some(exp))
            if iat <= now + 60 && exp > now && exp > iat && exp - iat <= 3600);
        if !timely {
            return invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        let scopes: Vec<&str> = claims["scope"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if scopes.is_empty() {
            return oauth_error(
                400,
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            );
        }
        let subject = claims["sub"].as_str().map(str::to_lowercase);
        if let Some(sub) = &subject {
            let known = self.config.admin_email.eq_ignore_ascii_case(sub)
                || self.config.users.iter().any(|u| u.idp_login.eq_ignore_ascii_case(sub));
            if !known {
                return invalid_grant("Invalid email or User ID");
            }
            if !scopes
                .iter()
                .all(|s| self.config.delegated_scopes.iter().any(|d| d == s))
            {
                return oauth_error(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
                );
            }
        }
        let token = {
            let mut rng = lock(&self.rng);
            let raw: [u8; 48] = rng.random();
            format!("ya29.c.{}", URL_SAFE_NO_PAD.encode(raw))
        };
        lock(&self.tokens).insert(token.clone(), (Utc::now() + TimeDelta::seconds(3599), subject));
        lock(&self.issued).push(token.clone());
        Reply::json(
            200,
            json!({"access_token": token, "expires_in": self.config.token_expires_in, "token_type": "Bearer"}),
        )
    }

    /// The impersonated subject of a valid bearer token, if there is one (`Some(None)`: the
    /// service account itself).
    pub(super) fn bearer_subject(&self, req: &Req) -> Option<Option<String>> {
        let token = req.header("authorization")?.strip_prefix("Bearer ")?.trim();
        lock(&self.tokens)
            .get(token)
            .filter(|(exp, _)| *exp > Utc::now())
            .map(|(_, sub)| sub.clone())
    }
}
