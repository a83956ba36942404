//! The project's OpenAPI file describes exactly the routes the connect router serves, with the
//! callback's redirect reasons documented.

use std::collections::BTreeSet;

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
    let served: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()))
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn openapi_file_documents_security_and_every_redirect_reason() {
    let (text, spec) = spec();
    for route in ROUTES {
        let operation = &spec["paths"][route.path()][route.method().to_ascii_lowercase()];
        let security = operation["security"]
            .as_sequence()
            .expect("every operation states its security");
        if route.path() == "/oauth/box/callback" {
            assert!(security.is_empty(), "the callback has no authorizer");
        } else {
            assert!(
                !security.is_empty(),
                "{} {} needs the JWT",
                route.method(),
                route.path()
            );
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
