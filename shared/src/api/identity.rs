//! Who is calling: [`Identity`], only from API Gateway's verified JWT claims, with the tenant
//! claim named by [`TenantClaim`].

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use lambda_http::request::RequestContext;

use super::ApiError;
use super::text::has_control;
use crate::ids::TenantId;

/// The JWT claim that names the caller's tenant (`TENANT_CLAIM`, default `tenant_id`).
#[derive(Debug, Clone)]
pub struct TenantClaim(pub Arc<str>);

impl Default for TenantClaim {
    fn default() -> Self {
        Self(Arc::from("tenant_id"))
    }
}

/// The authenticated caller: the tenant from the verified JWT claim named by [`TenantClaim`], the
/// person from `sub`. Taken only from API Gateway's authorizer context, never from the path,
/// query or body. The local development identity (`seatsync-local serve --dev-identity`, in
/// `tools/seatsync-local/src/dev_identity.rs`) is a layer of that local tool that puts the same
/// request context in place; no function has it, and this extractor does not know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: TenantId,
    pub sub: String,
}

impl Identity {
    /// Reads the identity from the request extensions lambda_http fills in.
    pub fn from_extensions(extensions: &http::Extensions, tenant_claim: &str) -> Result<Self, ApiError> {
        let unauthorized = |detail: &str| ApiError::Unauthorized(detail.to_owned());
        let Some(RequestContext::ApiGatewayV2(context)) = extensions.get::<RequestContext>() else {
            return Err(unauthorized("the request carries no verified identity; sign in again"));
        };
        let claims = context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims)
            .ok_or_else(|| unauthorized("the request carries no verified identity; sign in again"))?;
        let tenant = claims
            .get(tenant_claim)
            .and_then(|t| TenantId::parse(t).ok())
            .ok_or_else(|| ApiError::Unauthorized(format!("the token has no valid `{tenant_claim}` claim")))?;
        let sub = claims
            .get("sub")
            .filter(|s| !s.is_empty() && s.len() <= 256 && !has_control(s, &[]))
            .ok_or_else(|| unauthorized("the token has no valid `sub` claim"))?;
        Ok(Self {
            tenant,
            sub: sub.clone(),
        })
    }
}

impl<S> FromRequestParts<S> for Identity
where
    S: Send + Sync,
    TenantClaim: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claim = TenantClaim::from_ref(state);
        Self::from_extensions(&parts.extensions, &claim.0)
    }
}
