//! The edge of the connect API: identity only from the verified JWT claims, and every bad
//! request — malformed, mistyped, unknown fields, too large, not UTF-8, unknown route, wrong
//! method — answered with a problem+json 4xx (item 28), never a panic or a 5xx.

use seatsync_tests::apigw::ApiRequest;
use serde_json::json;

use crate::connect_fixture::Connect;

#[tokio::test]
async fn requests_without_a_valid_tenant_claim_are_401() {
    let c = Connect::new().await;
    let cases = [
        ApiRequest::new("GET", "/connections/box"),
        ApiRequest::authorized("GET", "/connections/box", json!({ "sub": "p1" })),
        ApiRequest::authorized(
            "GET",
            "/connections/box",
            json!({ "sub": "p1", "tenant_id": "../other" }),
        ),
        ApiRequest::authorized("GET", "/connections/box", json!({ "sub": "p1", "tenant_id": "" })),
        ApiRequest::authorized("DELETE", "/connections/box", json!({ "tenant_id": "acme" })),
        ApiRequest::authorized(
            "POST",
            "/connections/box/start",
            json!({ "sub": "p1", "custom:tenant": "acme" }),
        ),
    ];
    for request in cases {
        c.send(request).await.problem(401);
    }
    // The tenant is never taken from the query or the body either.
    let from_query = ApiRequest::new("GET", "/connections/box").query("tenant_id=acme");
    c.send(from_query).await.problem(401);
    assert_eq!(c.tb.sim.counters().total_all(), 0);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problem_json() {
    let c = Connect::new().await;
    let claims = Connect::claims("acme");
    let problem = c
        .send(ApiRequest::authorized("GET", "/connections/nope", claims.clone()))
        .await
        .problem(404);
    assert!(problem["detail"].as_str().unwrap().contains("/connections/nope"));
    c.send(ApiRequest::authorized("GET", "/../../etc/passwd", claims.clone()))
        .await
        .problem(404);
    c.send(ApiRequest::authorized("PATCH", "/connections/box", claims.clone()))
        .await
        .problem(405);
    c.send(ApiRequest::authorized("GET", "/connections/box/start", claims.clone()))
        .await
        .problem(405);
    c.send(ApiRequest::new("POST", "/oauth/box/callback"))
        .await
        .problem(405);
}

#[tokio::test]
async fn malformed_bodies_are_4xx_problem_json() {
    let c = Connect::new().await;
    let claims = Connect::claims("acme");
    let base = || ApiRequest::authorized("PUT", "/connections/box/client-credentials", claims.clone());
    let start = || ApiRequest::authorized("POST", "/connections/box/start", claims.clone());
    let cases: Vec<(ApiRequest, u16)> = vec![
        (base().raw_body("application/json", b"{not json".to_vec()), 400),
        (
            base().raw_body(
                "application/json",
                b"{\"client_id\": 5, \"client_secret\": \"s\", \"enterprise_id\": \"1\"}".to_vec(),
            ),
            400,
        ),
        (
            base()
                .json(&json!({ "client_id": "a", "client_secret": "s", "enterprise_id": "1", "tenant_id": "globex" })),
            400,
        ),
        (base().json(&json!({ "client_id": "a" })), 400),
        (base().json(&json!([1, 2, 3])), 400),
        (base(), 400),
        (base().raw_body("application/json", vec![b'{', 0xff, 0xfe, b'}']), 400),
        (base().raw_body("text/plain", b"client_id=a".to_vec()), 415),
        (
            base().raw_body(
                "application/json",
                format!("{{\"client_id\": \"{}\"}}", "a".repeat(17 * 1024)).into_bytes(),
            ),
            413,
        ),
        (start().json(&json!({ "content_transfer": "yes" })), 400),
        (
            start().json(&json!({ "content_transfer": true, "tenant_id": "globex" })),
            400,
        ),
        (start().raw_body("application/json", b"nul".to_vec()), 400),
    ];
    for (request, status) in cases {
        let answer = c.send(request).await;
        answer.problem(status);
    }
    assert_eq!(c.tb.sim.counters().total_all(), 0);
    assert!(c.record("acme").await.is_none());
    assert!(c.record("globex").await.is_none());
}

#[tokio::test]
async fn problem_details_do_not_echo_secret_values() {
    let c = Connect::new().await;
    let body =
        json!({ "client_id": "abc", "client_secret": "s", "enterprise_id": "1", "content_transfer": "hunter2-secret" });
    let answer = c
        .send(ApiRequest::authorized("PUT", "/connections/box/client-credentials", Connect::claims("acme")).json(&body))
        .await;
    answer.problem(400);
    let wrong_type = json!({ "client_id": "abc", "client_secret": { "v": "hunter2-secret" }, "enterprise_id": "1" });
    let answer2 = c
        .send(
            ApiRequest::authorized("PUT", "/connections/box/client-credentials", Connect::claims("acme"))
                .json(&wrong_type),
        )
        .await;
    answer2.problem(400);
    let bool_field = c
        .send(
            ApiRequest::authorized("POST", "/connections/box/start", Connect::claims("acme"))
                .json(&json!({ "content_transfer": "hunter2-secret" })),
        )
        .await;
    bool_field.problem(400);
    for a in [answer, answer2, bool_field] {
        assert!(
            !String::from_utf8_lossy(&a.body).contains("hunter2"),
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }
}
