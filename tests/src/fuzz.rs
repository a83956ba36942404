//! Property-based requests for every HTTP router (reliability item 28): arbitrary methods, paths
//! built on the real route templates with hostile segments, queries, headers and bodies (bad JSON,
//! wrong types, non-UTF-8, huge). The property: never a panic, never a 5xx, and every 4xx is
//! problem+json.

use proptest::prelude::*;
use serde_json::Value;

use crate::apigw::{ApiRequest, ApiResponse};

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,22}",
        "[A-Za-z0-9._~-]{0,40}",
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect::<String>()),
    ]
}

fn path(templates: Vec<String>) -> impl Strategy<Value = String> {
    let from_template = (prop::sample::select(templates), segment()).prop_map(|(template, seg)| {
        template
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    seg.clone()
                } else {
                    part.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    });
    let random = prop::collection::vec(segment(), 0..5).prop_map(|segs| format!("/{}", segs.join("/")));
    prop_oneof![4 => from_template, 1 => random]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        Just("state".to_owned()),
        Just("transfer_to".to_owned()),
        Just("code".to_owned()),
        Just("dry_run".to_owned()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        "[A-Za-z0-9_-]{0,30}",
        "-?[0-9]{1,25}",
        Just("%FF%FE".to_owned()),
        Just("true".to_owned())
    ];
    prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("reason".to_owned()),
                    Just("dry_run".to_owned()),
                    Just("user_ids".to_owned()),
                    Just("criteria".to_owned()),
                    Just("client_secret".to_owned()),
                    Just("seats_purchased".to_owned()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Option<(String, Vec<u8>)>> {
    prop_oneof![
        Just(None),
        json_value().prop_map(|v| Some(("application/json".to_owned(), v.to_string().into_bytes()))),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| Some(("application/json".to_owned(), b))),
        ".{0,100}".prop_map(|s| Some(("text/plain".to_owned(), s.into_bytes()))),
        (1usize..4).prop_map(|n| Some(("application/json".to_owned(), vec![b'['; n * 20_000]))),
    ]
}

/// One hostile request for routes like `/users/{box_user_id}/deactivate`.
pub fn request(templates: &[&str], claims: Value) -> impl Strategy<Value = ApiRequest> {
    let templates: Vec<String> = templates.iter().map(|t| (*t).to_owned()).collect();
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]);
    let header = prop::sample::select(vec![
        "accept",
        "idempotency-key",
        "cookie",
        "x-forwarded-for",
        "content-type",
    ]);
    let headers = prop::collection::vec((header, "[ -~]{0,60}"), 0..3);
    let with_claims = prop_oneof![4 => Just(true), 1 => Just(false)];
    (method, path(templates), query(), headers, body(), with_claims).prop_map(
        move |(method, path, query, headers, body, with_claims)| {
            let mut request = if with_claims {
                ApiRequest::authorized(method, &path, claims.clone())
            } else {
                ApiRequest::new(method, &path)
            };
            request = request.query(&query);
            for (name, value) in headers {
                request = request.header(name, &value);
            }
            if let Some((content_type, bytes)) = body {
                request = request.raw_body(&content_type, bytes);
            }
            request
        },
    )
}

/// The property every router must hold for any request.
pub fn check(response: &ApiResponse) -> Result<(), TestCaseError> {
    prop_assert!(
        response.status < 500,
        "a 5xx for bad input: {} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    if response.status >= 400 {
        prop_assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "a 4xx that is not problem+json"
        );
    }
    Ok(())
}
