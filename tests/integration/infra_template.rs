//! infra_template: `infra/template.yaml` stays in step with the code. The table's keys come from
//! `seatsync::storage::schema`, every function crate is deployed, only the OAuth callback is reachable
//! without a JWT, and no IAM statement grants more than named actions on named resources.
//!
//! The template is read as plain YAML: CloudFormation short forms (`!Ref`, `!Sub`, `!GetAtt`) arrive as
//! `serde_yaml::Value::Tagged` and are looked through where a literal is expected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use seatsync::storage::schema::{
    GSI1, GSI1_KEY_SCHEMA, TABLE_KEY_SCHEMA, TTL_ATTRIBUTE, USER_INDEX_ATTRIBUTES, USER_INDEXES, user_index_key_schema,
};
use serde_yaml::Value;

/// Actions that do not support resource-level permissions, so `Resource: "*"` is their only form.
/// Nothing in the template needs one today (SAM's own X-Ray managed policy covers tracing).
const ACTIONS_ALLOWED_ON_ANY_RESOURCE: &[&str] = &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// The one route Box's browser redirect reaches: it carries no bearer token.
const UNAUTHENTICATED_ROUTE: (&str, &str) = ("GET", "/oauth/box/callback");

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn template() -> Value {
    let path = workspace_root().join("infra").join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The value under a CloudFormation tag (`!Ref x` → `x`), or the value itself.
pub(crate) fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

/// `value[key]`, looking through tags on the way.
pub(crate) fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match untag(value) {
        Value::Mapping(map) => map.get(key),
        _ => None,
    }
}

/// A path of keys that must exist; the panic names where it stopped.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    let mut current = value;
    for (i, key) in path.iter().enumerate() {
        current = field(current, key).unwrap_or_else(|| panic!("template has no {}", path[..=i].join(".")));
    }
    current
}

/// A literal string (untagged); `None` for intrinsics such as `!Sub` or `{Ref: ...}`.
pub(crate) fn literal(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

pub(crate) fn string(value: &Value, what: &str) -> String {
    literal(value)
        .unwrap_or_else(|| panic!("{what} is not a literal string: {value:?}"))
        .to_owned()
}

/// The logical id of `!Ref X` or `{Ref: X}`.
pub(crate) fn ref_target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => literal(&tagged.value),
        Value::Mapping(map) => map.get("Ref").and_then(literal),
        _ => None,
    }
}

/// A scalar or a list of scalars, as a list (IAM `Action`/`Resource`, both forms are legal).
pub(crate) fn one_or_many(value: &Value) -> Vec<&Value> {
    match untag(value) {
        Value::Sequence(items) => items.iter().collect(),
        _ => vec![value],
    }
}

pub(crate) fn resources_of_type<'a>(template: &'a Value, type_name: &str) -> Vec<(String, &'a Value)> {
    let Value::Mapping(resources) = at(template, &["Resources"]) else {
        panic!("Resources is not a mapping")
    };
    resources
        .iter()
        .filter(|(_, r)| field(r, "Type").and_then(literal) == Some(type_name))
        .map(|(id, r)| (string(id, "a logical id"), r))
        .collect()
}

/// A resource property, falling back to `Globals.Function` the way SAM merges them.
pub(crate) fn function_property<'a>(template: &'a Value, function: &'a Value, name: &str) -> Option<&'a Value> {
    field(at(function, &["Properties"]), name).or_else(|| {
        field(template, "Globals")
            .and_then(|g| field(g, "Function"))
            .and_then(|f| field(f, name))
    })
}

/// A DynamoDB `KeySchema` as `(attribute, key type)` pairs, in order.
fn key_schema(value: &Value) -> Vec<(String, String)> {
    one_or_many(value)
        .into_iter()
        .map(|k| {
            (
                string(at(k, &["AttributeName"]), "AttributeName"),
                string(at(k, &["KeyType"]), "KeyType"),
            )
        })
        .collect()
}

fn owned(schema: &[(&str, &str)]) -> Vec<(String, String)> {
    schema.iter().map(|(a, k)| ((*a).to_owned(), (*k).to_owned())).collect()
}

fn the_table(template: &Value) -> (String, &Value) {
    let mut tables = resources_of_type(template, "AWS::DynamoDB::Table");
    assert_eq!(
        tables.len(),
        1,
        "the single-table design has exactly one table: {tables:?}"
    );
    tables.remove(0)
}

#[test]
fn table_key_schema_matches_the_code() {
    let template = template();
    let (_, table) = the_table(&template);
    let props = at(table, &["Properties"]);

    assert_eq!(
        key_schema(at(props, &["KeySchema"])),
        owned(&TABLE_KEY_SCHEMA),
        "table KeySchema"
    );

    let indexes = one_or_many(at(props, &["GlobalSecondaryIndexes"]));
    // gsi1 and the six user GSIs, in the order of schema.rs.
    let mut expected_indexes = vec![(GSI1, GSI1_KEY_SCHEMA)];
    expected_indexes.extend(
        USER_INDEXES
            .iter()
            .map(|(name, partition, sort)| (*name, user_index_key_schema(partition, sort))),
    );
    assert_eq!(indexes.len(), expected_indexes.len(), "gsi1 and the user GSIs");
    for (gsi, (name, schema)) in indexes.iter().zip(&expected_indexes) {
        assert_eq!(literal(at(gsi, &["IndexName"])), Some(*name), "GSI name");
        assert_eq!(
            key_schema(at(gsi, &["KeySchema"])),
            owned(schema),
            "GSI {name} KeySchema"
        );
        assert_eq!(
            literal(at(gsi, &["Projection", "ProjectionType"])),
            Some("ALL"),
            "GSI {name} projection"
        );
    }

    // Exactly the key attributes, all strings: CloudFormation rejects definitions no key uses.
    let definitions: Vec<(String, String)> = one_or_many(at(props, &["AttributeDefinitions"]))
        .into_iter()
        .map(|d| {
            (
                string(at(d, &["AttributeName"]), "AttributeName"),
                string(at(d, &["AttributeType"]), "AttributeType"),
            )
        })
        .collect();
    let defined: BTreeSet<_> = definitions.iter().cloned().collect();
    assert_eq!(
        defined.len(),
        definitions.len(),
        "duplicate AttributeDefinitions: {definitions:?}"
    );
    let expected: BTreeSet<_> = TABLE_KEY_SCHEMA
        .iter()
        .chain(GSI1_KEY_SCHEMA.iter())
        .map(|(attribute, _)| *attribute)
        .chain(USER_INDEX_ATTRIBUTES)
        .map(|attribute| (attribute.to_owned(), "S".to_owned()))
        .collect();
    assert_eq!(defined, expected, "AttributeDefinitions");

    let ttl = at(props, &["TimeToLiveSpecification"]);
    assert_eq!(
        literal(at(ttl, &["AttributeName"])),
        Some(TTL_ATTRIBUTE),
        "TTL attribute"
    );
    assert_eq!(at(ttl, &["Enabled"]), &Value::Bool(true), "TTL enabled");

    assert_eq!(
        at(
            props,
            &["PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"]
        ),
        &Value::Bool(true),
        "point-in-time recovery"
    );
    assert_eq!(
        literal(at(props, &["BillingMode"])),
        Some("PAY_PER_REQUEST"),
        "on-demand billing"
    );
}

#[test]
fn table_is_retained_and_encrypted() {
    let template = template();
    let (_, table) = the_table(&template);
    assert_eq!(
        field(table, "DeletionPolicy").and_then(literal),
        Some("Retain"),
        "DeletionPolicy"
    );
    assert_eq!(
        field(table, "UpdateReplacePolicy").and_then(literal),
        Some("Retain"),
        "UpdateReplacePolicy"
    );
    assert_eq!(
        at(table, &["Properties", "SSESpecification", "SSEEnabled"]),
        &Value::Bool(true),
        "SSE"
    );
}

/// `name` from the `[package]` table of a Cargo.toml (no TOML parser in this crate's dependencies).
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    return value.trim().trim_matches('"').to_owned();
                }
            }
        }
    }
    panic!("{} has no [package] name", manifest.display())
}

#[test]
fn every_function_crate_has_a_template_function() {
    let template = template();
    let functions_dir = workspace_root().join("functions");
    let mut crates: Vec<String> = std::fs::read_dir(&functions_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", functions_dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .map(|dir| package_name(&dir.join("Cargo.toml")))
        .collect();
    crates.sort();
    assert!(
        !crates.is_empty(),
        "no function crates found in {}",
        functions_dir.display()
    );

    let architecture = at(&template, &["Parameters", "Architecture"]);
    assert_eq!(
        field(architecture, "Default").and_then(literal),
        Some("arm64"),
        "Architecture default"
    );
    let allowed: BTreeSet<&str> = one_or_many(at(architecture, &["AllowedValues"]))
        .into_iter()
        .filter_map(literal)
        .collect();
    assert_eq!(
        allowed,
        BTreeSet::from(["arm64", "x86_64"]),
        "Architecture AllowedValues"
    );

    let infra_dir = workspace_root().join("infra");
    let workspace = workspace_root().canonicalize().expect("the workspace root exists");
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let mut deployed = Vec::new();
    for (id, function) in &functions {
        let binary = field(function, "Metadata")
            .and_then(|m| field(m, "BuildProperties"))
            .and_then(|b| field(b, "Binary"))
            .and_then(literal)
            .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
        assert_eq!(
            field(function, "Metadata")
                .and_then(|m| field(m, "BuildMethod"))
                .and_then(literal),
            Some("rust-cargolambda"),
            "{id} BuildMethod"
        );
        // cargo-lambda runs in CodeUri and the builder takes CodeUri/target/lambda/<Binary>/bootstrap,
        // which exists only at the workspace root.
        let code_uri = function_property(&template, function, "CodeUri")
            .and_then(literal)
            .unwrap_or_else(|| panic!("{id} has no literal CodeUri"));
        assert_eq!(
            infra_dir.join(code_uri).canonicalize().ok().as_deref(),
            Some(workspace.as_path()),
            "{id} CodeUri {code_uri:?} must be the workspace root"
        );
        let runtime = function_property(&template, function, "Runtime").and_then(literal);
        assert_eq!(runtime, Some("provided.al2023"), "{id} Runtime");
        let handler = function_property(&template, function, "Handler").and_then(literal);
        assert_eq!(handler, Some("bootstrap"), "{id} Handler");
        let architectures: Vec<Option<&str>> = function_property(&template, function, "Architectures")
            .map(|a| one_or_many(a).into_iter().map(ref_target).collect())
            .unwrap_or_default();
        assert_eq!(
            architectures,
            vec![Some("Architecture")],
            "{id} Architectures must be [!Ref Architecture]"
        );
        deployed.push(binary.to_owned());
    }
    deployed.sort();

    // Both directions: no crate left undeployed, no function pointing at a crate that is gone.
    assert_eq!(deployed, crates, "template function binaries vs. crates in functions/");
}

#[test]
fn http_routes_require_jwt_except_the_oauth_callback() {
    let template = template();
    let apis = resources_of_type(&template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1, "exactly one HttpApi: {apis:?}");
    let (api_id, api) = &apis[0];

    let auth = at(api, &["Properties", "Auth"]);
    let default_name = string(at(auth, &["DefaultAuthorizer"]), "DefaultAuthorizer");
    let authorizer = at(auth, &["Authorizers", default_name.as_str()]);
    assert_eq!(
        literal(at(authorizer, &["IdentitySource"])),
        Some("$request.header.Authorization"),
        "JWT IdentitySource"
    );
    let jwt = at(authorizer, &["JwtConfiguration"]);
    assert_eq!(ref_target(at(jwt, &["issuer"])), Some("JwtIssuer"), "JWT issuer");
    assert_eq!(ref_target(at(jwt, &["audience"])), Some("JwtAudience"), "JWT audience");

    let mut routes = Vec::new();
    for (function_id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let Some(Value::Mapping(events)) = field(at(function, &["Properties"]), "Events").map(untag) else {
            continue;
        };
        for (event_id, event) in events {
            let event_id = literal(event_id).unwrap_or("?");
            let event_type = field(event, "Type").and_then(literal).unwrap_or_default();
            assert_ne!(
                event_type, "Api",
                "{function_id}: REST API events bypass the HttpApi and its authorizer"
            );
            if event_type != "HttpApi" {
                continue;
            }
            let props = at(event, &["Properties"]);
            let route = (
                string(at(props, &["Method"]), "Method").to_uppercase(),
                string(at(props, &["Path"]), "Path"),
            );
            // Without ApiId, SAM attaches the route to an implicit API that has no authorizer.
            assert_eq!(
                field(props, "ApiId").and_then(ref_target),
                Some(api_id.as_str()),
                "{function_id}.{event_id} {route:?} must name ApiId: !Ref {api_id}"
            );
            let authorizer = field(props, "Auth")
                .and_then(|a| field(a, "Authorizer"))
                .and_then(literal);
            routes.push((route, authorizer.map(str::to_owned)));
        }
    }

    let open: Vec<_> = routes.iter().filter(|(_, a)| a.as_deref() == Some("NONE")).collect();
    let expected_open = (UNAUTHENTICATED_ROUTE.0.to_owned(), UNAUTHENTICATED_ROUTE.1.to_owned());
    assert_eq!(open.len(), 1, "exactly one route without an authorizer: {open:?}");
    assert_eq!(open[0].0, expected_open, "the route without an authorizer");

    let protected: Vec<_> = routes.iter().filter(|(r, _)| *r != expected_open).collect();
    assert!(!protected.is_empty(), "no JWT-protected routes found");
    for (route, authorizer) in protected {
        assert!(
            authorizer.is_none() || authorizer.as_deref() == Some(default_name.as_str()),
            "{route:?} must use the JWT authorizer {default_name}, has {authorizer:?}"
        );
    }
}

/// Every IAM policy document in the template: any `Statement` list under a `Policies` entry or a
/// `PolicyDocument`, wherever it sits (SAM function policies, IAM roles, managed policies).
pub(crate) fn policy_statements<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match untag(value) {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = literal(key).unwrap_or("?");
                let child_path = format!("{path}.{key}");
                if key == "Statement" && !path.ends_with("AssumeRolePolicyDocument") {
                    for (i, statement) in one_or_many(child).into_iter().enumerate() {
                        out.push((format!("{child_path}[{i}]"), statement));
                    }
                } else {
                    policy_statements(child, &child_path, out);
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                policy_statements(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn function_policies_are_scoped() {
    let template = template();

    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let policies = function_property(&template, function, "Policies")
            .unwrap_or_else(|| panic!("{id} has no Policies: SAM would leave it without table access"));
        for policy in one_or_many(policies) {
            // Managed policy names and SAM policy templates (e.g. DynamoDBCrudPolicy) grant whole
            // services or every action on a resource: only inline documents are reviewable here.
            assert!(
                field(policy, "Statement").is_some(),
                "{id}: only inline policy documents, found {policy:?}"
            );
        }
    }

    let mut statements = Vec::new();
    policy_statements(at(&template, &["Resources"]), "Resources", &mut statements);
    assert!(!statements.is_empty(), "no IAM statements found");

    for (path, statement) in statements {
        assert!(
            field(statement, "NotAction").is_none(),
            "{path}: NotAction grants everything else"
        );
        assert!(
            field(statement, "NotResource").is_none(),
            "{path}: NotResource grants everything else"
        );
        if field(statement, "Effect").and_then(literal) != Some("Allow") {
            continue;
        }
        let actions: Vec<String> = one_or_many(at(statement, &["Action"]))
            .into_iter()
            .map(|a| string(a, &format!("{path}.Action")))
            .collect();
        for action in &actions {
            assert!(
                action != "*" && !action.ends_with(":*"),
                "{path}: action {action:?} grants a whole service"
            );
        }
        let any_resource = one_or_many(at(statement, &["Resource"]))
            .into_iter()
            .any(|r| literal(r) == Some("*"));
        if any_resource {
            let unscopable: Vec<_> = actions
                .iter()
                .filter(|a| !ACTIONS_ALLOWED_ON_ANY_RESOURCE.contains(&a.as_str()))
                .collect();
            assert!(
                unscopable.is_empty(),
                "{path}: Resource \"*\" for actions that support scoping: {unscopable:?}"
            );
        }
    }
}

/// The local API's development identity can never be switched on in AWS: nothing in the template,
/// the functions or the core crate refers to it; only `tools/seatsync-local` does.
#[test]
fn the_deployed_template_cannot_enable_the_local_dev_identity() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = std::fs::read_to_string(root.join("infra/template.yaml")).expect("read the template");
    for needle in ["x-seatsync-dev", "DEV_IDENTITY", "dev-identity", "dev_identity"] {
        assert!(
            !template.to_lowercase().contains(&needle.to_lowercase()),
            "the template mentions {needle}"
        );
    }
    let mut stack = vec![root.join("functions"), root.join("shared/src")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path
                    .strip_prefix(&root)
                    .is_ok_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
            {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("read a source file");
                assert!(
                    !text.contains("x-seatsync-dev"),
                    "{} refers to the local dev identity",
                    path.display()
                );
            }
        }
    }
    assert!(files > 20, "only {files} source files were searched");
}
