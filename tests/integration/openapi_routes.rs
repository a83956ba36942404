//! The project's OpenAPI file describes exactly the routes the three HTTP functions serve (connect,
//! license actions, reports and settings), with their security and the callback's redirect reasons.

use std::collections::BTreeSet;

use seatsync::api::RouteTable as _;
use seatsync::connect::{ROUTES, RefusalReason};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

fn spec() -> (String, serde_yaml::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/seatsync.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let value = serde_yaml::from_str(&text).expect("the OpenAPI file is YAML");
    (text, value)
}

#[test]
fn openapi_file_matches_the_router() {
    let (_, spec) = spec();
    assert_eq!(spec["openapi"].as_str(), Some("3.1.0"));
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().unwrap();
            if METHODS.contains(&method) {
                documented.insert((method.to_ascii_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    assert_eq!(documented, served());
}

/// Every (method, path) the routers serve.
fn served() -> BTreeSet<(String, String)> {
    let connect = ROUTES.iter().map(|r| (r.method().to_owned(), r.path().to_owned()));
    let actions = seatsync::actions::ROUTES
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()));
    let reports = seatsync::reports::ROUTES
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()));
    connect.chain(actions).chain(reports).collect()
}

#[test]
fn openapi_file_documents_security_and_every_redirect_reason() {
    let (text, spec) = spec();
    for (method, path) in served() {
        let operation = &spec["paths"][path.as_str()][method.to_ascii_lowercase()];
        let security = operation["security"]
            .as_sequence()
            .expect("every operation states its security");
        if path == "/oauth/box/callback" {
            assert!(security.is_empty(), "the callback has no authorizer");
        } else {
            assert!(!security.is_empty(), "{method} {path} needs the JWT");
        }
    }
    for reason in RefusalReason::ALL {
        assert!(
            text.contains(&format!("`{}`", reason.as_str())),
            "reason {} is undocumented",
            reason.as_str()
        );
    }
}
