//! Malformed requests to the licenses API — bad queries, bodies, headers, methods and identities —
//! get a 4xx problem+json answer, never a 5xx.

use seatsync_tests::apigw::ApiRequest;
use serde_json::json;

use crate::reports_fixture::{Reports, claims};

#[tokio::test]
async fn malformed_requests_get_4xx_problem_json_never_5xx() {
    let r = Reports::new().await;
    let c = || claims("acme");
    let huge = vec![b'{'; 64 * 1024];
    let cases: Vec<(ApiRequest, u16)> = vec![
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query("limit=-1"),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query("limit=99999999999999999999"),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query("state=%FF%FE"),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query("cursor="),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query(&format!("cursor={}", "A".repeat(5000))),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query("sort=../../etc"),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c()).query("state=active&state=never"),
            400,
        ),
        (
            ApiRequest::authorized("GET", "/licenses/users", c())
                .query("limit=0")
                .header("accept", "text/csv"),
            400,
        ),
        (ApiRequest::authorized("GET", "/licenses", c()).query("x=1"), 400),
        (ApiRequest::authorized("GET", "/audit", c()).query("limit=abc"), 400),
        (
            ApiRequest::authorized("GET", "/audit", c())
                .query("cursor=eyJwayI6IlRFTkFOVCNnbG9iZXgiLCJzayI6IkFVRElUI3gifQ"),
            400,
        ),
        (
            ApiRequest::authorized("PUT", "/settings", c()).raw_body("application/json", b"{not json".to_vec()),
            400,
        ),
        (
            ApiRequest::authorized("PUT", "/settings", c()).raw_body("application/json", vec![0xff, 0xfe, 0x00]),
            400,
        ),
        (
            ApiRequest::authorized("PUT", "/settings", c()).raw_body("application/json", b"[1,2]".to_vec()),
            400,
        ),
        (
            ApiRequest::authorized("PUT", "/settings", c()).raw_body("application/json", b"null".to_vec()),
            400,
        ),
        (ApiRequest::authorized("PUT", "/settings", c()), 400),
        (
            ApiRequest::authorized("PUT", "/settings", c()).raw_body("text/plain", b"{}".to_vec()),
            415,
        ),
        (
            ApiRequest::authorized("PUT", "/settings", c()).raw_body("application/json", huge),
            413,
        ),
        (
            ApiRequest::authorized("PUT", "/settings", c())
                .raw_body("application/json", br#"{"seats_purchased": 1e400}"#.to_vec()),
            400,
        ),
        (ApiRequest::authorized("DELETE", "/settings", c()), 405),
        (ApiRequest::authorized("GET", "/syncs", c()), 405),
        (ApiRequest::authorized("GET", "/licenses/users/12345", c()), 404),
        (ApiRequest::authorized("GET", "/nowhere", c()), 404),
        (ApiRequest::new("GET", "/licenses"), 401),
        (
            ApiRequest::authorized("GET", "/settings", json!({"sub": "x", "tenant_id": "../globex"})),
            401,
        ),
        (
            ApiRequest::authorized("POST", "/syncs", json!({"tenant_id": "acme"})),
            401,
        ),
    ];
    for (request, status) in cases {
        let event = request.event();
        let response = r.send(request).await;
        assert!(response.status < 500, "{event}");
        let problem = response.problem(status);
        assert!(problem["title"].is_string(), "{problem}");
    }
}
