//! The development identity of the local HTTP API. In AWS, API Gateway's JWT authorizer verifies the
//! caller and Lambda hands the claims to the function in the request context. Locally there is no
//! authorizer, so — only when `seatsync-local serve --dev-identity` is started — a request carrying
//! `x-seatsync-dev-tenant: <tenant>` (and optionally `x-seatsync-dev-sub`) gets the request context
//! an authorizer would have produced. Without the flag, or without the header, there is no identity
//! and the API answers 401, as it does in AWS.
//!
//! This layer lives only in this local tool: the Lambda functions never read these headers, and no
//! setting of theirs (nor of the deployed template) can turn it on.

use axum::extract::Request;
use lambda_http::request::RequestContext;
use serde_json::json;

pub const TENANT_HEADER: &str = "x-seatsync-dev-tenant";
pub const SUB_HEADER: &str = "x-seatsync-dev-sub";

/// Adds the authorizer context for the dev headers, when present; removes any the caller sent.
pub fn apply(mut request: Request) -> Request {
    request.extensions_mut().remove::<RequestContext>();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(tenant) = header(TENANT_HEADER) else {
        return request;
    };
    let sub = header(SUB_HEADER).unwrap_or_else(|| "local-developer".to_owned());
    let context = json!({
        "accountId": "000000000000", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
        "http": { "method": request.method().as_str(), "path": request.uri().path(), "protocol": "HTTP/1.1",
                  "sourceIp": "127.0.0.1", "userAgent": "local" },
        "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": "$default", "stage": "$default",
        "time": "", "timeEpoch": 0,
        "authorizer": { "jwt": { "claims": { "tenant_id": tenant, "sub": sub }, "scopes": null } }
    });
    if let Ok(context) = serde_json::from_value(context) {
        request.extensions_mut().insert(RequestContext::ApiGatewayV2(context));
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_becomes_an_authorizer_context_and_nothing_else_does() {
        let with = apply(
            axum::http::Request::builder()
                .uri("/licenses")
                .header(TENANT_HEADER, "acme")
                .body(Default::default())
                .unwrap(),
        );
        match with.extensions().get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                let claims = &ctx.authorizer.as_ref().unwrap().jwt.as_ref().unwrap().claims;
                assert_eq!(claims.get("tenant_id").map(String::as_str), Some("acme"));
            }
            other => panic!("{other:?}"),
        }
        let without = apply(
            axum::http::Request::builder()
                .uri("/licenses")
                .body(Default::default())
                .unwrap(),
        );
        assert!(without.extensions().get::<RequestContext>().is_none());
    }
}
