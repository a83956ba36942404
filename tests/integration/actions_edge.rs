//! Malformed input to every actions route gets a 4xx problem+json, never a 5xx, and never a Box call.

use seatsync_tests::apigw::ApiRequest;
use serde_json::json;

use crate::actions_fixture::{Actions, TENANT};

#[tokio::test]
async fn malformed_requests_get_4xx_problems_and_no_box_call() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    let claims = Actions::claims(TENANT);
    let deactivate = format!("/users/{id}/deactivate");
    let cases: Vec<(ApiRequest, u16)> = vec![
        (
            ApiRequest::authorized("POST", "/users/12ab/deactivate", claims.clone()).json(&json!({"reason": "r"})),
            400,
        ),
        (
            ApiRequest::authorized("POST", "/users/..%2F1/deactivate", claims.clone()).json(&json!({"reason": "r"})),
            400,
        ),
        (
            ApiRequest::authorized("POST", &format!("/users/{}/deactivate", "9".repeat(21)), claims.clone())
                .json(&json!({"reason": "r"})),
            400,
        ),
        (ApiRequest::authorized("POST", &deactivate, claims.clone()), 400),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone())
                .raw_body("application/json", b"{not json".to_vec()),
            400,
        ),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone()).json(&json!({"reason": 5})),
            400,
        ),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone()).json(&json!({"reason": "r", "force": true})),
            400,
        ),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone()).json(&json!({"reason": "x".repeat(501)})),
            400,
        ),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone())
                .raw_body("application/json", vec![0xff, 0xfe, b'{']),
            400,
        ),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone()).raw_body("text/plain", b"reason".to_vec()),
            415,
        ),
        (
            ApiRequest::authorized("POST", &deactivate, claims.clone()).json(&json!({"reason": "x".repeat(20_000)})),
            413,
        ),
        (
            ApiRequest::authorized("DELETE", &format!("/users/{id}"), claims.clone()).query("transfer_to=abc"),
            400,
        ),
        (
            ApiRequest::authorized("DELETE", &format!("/users/{id}"), claims.clone()).query("force=true"),
            400,
        ),
        (
            ApiRequest::authorized("DELETE", &format!("/users/{id}"), claims.clone()).query("dry_run=maybe"),
            400,
        ),
        (ApiRequest::authorized("PUT", &deactivate, claims.clone()), 405),
        (ApiRequest::authorized("GET", "/users/1/elsewhere", claims.clone()), 404),
        (ApiRequest::new("POST", &deactivate).json(&json!({"reason": "r"})), 401),
        (
            ApiRequest::authorized("POST", &deactivate, json!({"sub": "x", "tenant_id": "a#b"}))
                .json(&json!({"reason": "r"})),
            401,
        ),
    ];
    for (request, status) in cases {
        let described = format!("{request:?}");
        let response = f.send(request.header("idempotency-key", "edge")).await;
        assert!(response.status < 500, "{described}: {}", response.status);
        response.problem(status);
    }
    assert_eq!(f.box_calls(), 0);
    assert_eq!(f.tb.sim.user(&id).unwrap().status, "active");
}
