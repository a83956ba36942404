//! infra_least_privilege: each function's IAM policy in `infra/template.yaml` reaches exactly the
//! secrets its code uses, with exactly the Secrets Manager actions it calls. The template's policies
//! are evaluated here the way IAM matches them (`*` and `?` wildcards in actions and resource ARNs)
//! against secret ARNs built from the code's own secret names (`SecretStore::box_secret_name`,
//! `sso_secret_name`).
//!
//! Secrets Manager authorizes a call on an existing secret against its ARN, which ends in `-` and six
//! random characters; a call on a secret that does not exist (a read that should answer "not found",
//! which the code relies on) is authorized against the bare name. Both forms are checked.

use std::collections::BTreeSet;

use seatsync::ids::TenantId;
use seatsync::storage::SecretStore;
use serde_yaml::Value;

use crate::infra_template::{at, field, literal, one_or_many, resources_of_type, template, untag};

const PARTITION: &str = "aws";
const REGION: &str = "eu-central-1";
const ACCOUNT: &str = "123456789012";
/// What Secrets Manager appends to a secret's name in its ARN.
const SUFFIX: &str = "-Ab1Cd2";

/// Every Secrets Manager action that reads, changes or reveals a secret.
const SECRET_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:UpdateSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:RotateSecret",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:TagResource",
];

const GET: &str = "secretsmanager:GetSecretValue";
const PUT: &str = "secretsmanager:PutSecretValue";
const CREATE: &str = "secretsmanager:CreateSecret";
const DELETE: &str = "secretsmanager:DeleteSecret";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A tenant's Box tokens (`TokenVault`: read, write = put or create, delete).
    Box,
    /// A tenant's SSO provider credentials (settings write and delete them, the sync reads them).
    Sso,
    /// The deployment's Box app and cookie key (`AppConfig::load`).
    App,
}

/// What each function's code does with each kind of secret (read from the code paths:
/// `grep -rn 'sso_secret_name\|box_secret_name\|vault\.' shared/src functions`).
fn needs(binary: &str) -> Vec<(Kind, &'static [&'static str])> {
    match binary {
        // Connect stores the tokens (PutSecretValue, or CreateSecret the first time), status and
        // disconnect read them, disconnect deletes them. It never touches SSO settings.
        "oauth-callback" => vec![(Kind::Box, &[GET, PUT, CREATE, DELETE]), (Kind::App, &[GET])],
        // Token refreshes rotate the refresh token (PutSecretValue); SSO credentials are only read.
        "usage-sync" => vec![(Kind::Box, &[GET, PUT]), (Kind::Sso, &[GET]), (Kind::App, &[GET])],
        // Box calls on a user may need a token refresh; no SSO at all.
        "deactivate" => vec![(Kind::Box, &[GET, PUT]), (Kind::App, &[GET])],
        // Settings: SSO credentials are stored, replaced, deleted and checked for existence.
        "licenses-api" => vec![(Kind::Sso, &[GET, PUT, CREATE, DELETE])],
        other => panic!("no expectation for the function {other}: add what its code does with secrets"),
    }
}

/// The default of a template parameter.
fn parameter_default(template: &Value, name: &str) -> String {
    let default = at(template, &["Parameters", name, "Default"]);
    match untag(default) {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("parameter {name} has a default that is not a scalar: {other:?}"),
    }
}

/// A `!Sub` string with pseudo parameters, parameter defaults, and placeholders for other
/// resources' attributes (which never look like a secret ARN).
fn substitute(template: &Value, text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unterminated ${{ in {text:?}"));
        let name = &after[..end];
        let value = match name {
            "AWS::Partition" => PARTITION.to_owned(),
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackName" => "seatsync".to_owned(),
            _ if field(at(template, &["Parameters"]), name).is_some() => parameter_default(template, name),
            _ => format!("<{name}>"),
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The ARN a `Resource` entry names, as IAM sees it after CloudFormation resolved it.
fn resolve(template: &Value, value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Tagged(tagged) if tagged.tag == "Sub" => {
            let text = literal(&tagged.value).unwrap_or_else(|| panic!("!Sub with variables: {value:?}"));
            substitute(template, text)
        }
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            let target = literal(&tagged.value).unwrap_or_else(|| panic!("odd !Ref: {value:?}"));
            let resource = at(template, &["Resources", target]);
            // `Ref` of a secret is its ARN: the name plus Secrets Manager's suffix.
            if field(resource, "Type").and_then(literal) == Some("AWS::SecretsManager::Secret") {
                let name = resolve(template, at(resource, &["Properties", "Name"]));
                secret_arn(&format!("{name}{SUFFIX}"))
            } else {
                format!("<ref {target}>")
            }
        }
        Value::Tagged(tagged) => format!("<{} {:?}>", tagged.tag, tagged.value),
        other => panic!("unexpected Resource form: {other:?}"),
    }
}

fn secret_arn(name_with_suffix: &str) -> String {
    format!("arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{name_with_suffix}")
}

/// IAM's wildcard match: `*` any run of characters, `?` exactly one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The template function deployed from the crate `binary`, with its logical id.
pub(crate) fn function_for_binary<'a>(template: &'a Value, binary: &str) -> (String, &'a Value) {
    resources_of_type(template, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| {
            field(f, "Metadata")
                .and_then(|m| field(m, "BuildProperties"))
                .and_then(|b| field(b, "Binary"))
                .and_then(literal)
                == Some(binary)
        })
        .unwrap_or_else(|| panic!("no template function builds the binary {binary}"))
}

/// Whether the function's inline policies allow `action` on `arn` (no Deny statements exist: the
/// scoping test refuses NotAction/NotResource, and an explicit Deny is reported here).
fn allows(template: &Value, function: &Value, action: &str, arn: &str) -> bool {
    let Some(policies) = field(at(function, &["Properties"]), "Policies") else {
        return false;
    };
    let mut allowed = false;
    for policy in one_or_many(policies) {
        let Some(statements) = field(policy, "Statement") else {
            continue;
        };
        for statement in one_or_many(statements) {
            let effect = field(statement, "Effect").and_then(literal).unwrap_or_default();
            let action_matches = one_or_many(at(statement, &["Action"]))
                .into_iter()
                .filter_map(literal)
                .any(|a| wildcard_match(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()));
            let resource_matches = one_or_many(at(statement, &["Resource"]))
                .into_iter()
                .any(|r| wildcard_match(&resolve(template, r), arn));
            if action_matches && resource_matches {
                assert_eq!(
                    effect, "Allow",
                    "a Deny statement would need real IAM evaluation: {statement:?}"
                );
                allowed = true;
            }
        }
    }
    allowed
}

/// The secrets a function could meet: each kind for two tenants whose ids look like the other
/// kind's name, in both ARN forms (existing: with the suffix; missing: the bare name).
fn secrets_by_kind(template: &Value) -> Vec<(Kind, String)> {
    let prefix = parameter_default(template, "SecretPrefix");
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .build();
    let store = SecretStore::with_prefix(aws_sdk_secretsmanager::Client::from_conf(config), prefix);
    let app_secret = resolve(
        template,
        at(template, &["Resources", "AppSecret", "Properties", "Name"]),
    );
    // The app secret always exists (the stack creates it) and is read by its full ARN.
    let mut secrets = vec![(Kind::App, secret_arn(&format!("{app_secret}{SUFFIX}")))];
    for tenant in ["acme", "box", "sso", "app"] {
        let tenant = TenantId::parse(tenant).expect("a valid tenant id");
        for (kind, name) in [
            (Kind::Box, store.box_secret_name(&tenant)),
            (Kind::Sso, store.sso_secret_name(&tenant)),
        ] {
            secrets.push((kind, secret_arn(&format!("{name}{SUFFIX}"))));
            secrets.push((kind, secret_arn(&name)));
        }
    }
    secrets
}

/// `(action, arn)` pairs the function is allowed on, among the secrets of `kind`.
fn granted(template: &Value, binary: &str, kind: Kind) -> BTreeSet<(String, String)> {
    let (_, function) = function_for_binary(template, binary);
    secrets_by_kind(template)
        .into_iter()
        .filter(|(k, _)| *k == kind)
        .flat_map(|(_, arn)| SECRET_ACTIONS.iter().map(move |a| ((*a).to_owned(), arn.clone())))
        .filter(|(action, arn)| allows(template, function, action, arn))
        .collect()
}

#[test]
fn iam_wildcards_match_like_iam() {
    assert!(wildcard_match(
        "a:secret:p/tenants/*/box-??????",
        "a:secret:p/tenants/acme/box-Ab1Cd2"
    ));
    assert!(!wildcard_match(
        "a:secret:p/tenants/*/box-??????",
        "a:secret:p/tenants/acme/box"
    ));
    assert!(!wildcard_match(
        "a:secret:p/tenants/*/box-??????",
        "a:secret:p/tenants/acme/box-Ab1Cd23"
    ));
    assert!(!wildcard_match(
        "a:secret:p/tenants/*/box-??????",
        "a:secret:p/tenants/box/sso-Ab1Cd2"
    ));
    assert!(wildcard_match(
        "a:secret:p/tenants/*",
        "a:secret:p/tenants/box/sso-Ab1Cd2"
    ));
    assert!(wildcard_match("secretsmanager:get*", "secretsmanager:getsecretvalue"));
    assert!(!wildcard_match("secretsmanager:get*", "secretsmanager:putsecretvalue"));
}

#[test]
fn deactivate_cannot_read_sso_secrets() {
    let template = template();
    let sso = granted(&template, "deactivate", Kind::Sso);
    assert!(sso.is_empty(), "deactivate reaches tenants' SSO credentials: {sso:#?}");
    // The control: it can still refresh Box tokens, or every deactivation would fail.
    let boxes = granted(&template, "deactivate", Kind::Box);
    assert!(
        boxes.iter().any(|(a, _)| a == GET) && boxes.iter().any(|(a, _)| a == PUT),
        "deactivate must read and rotate the Box tokens: {boxes:#?}"
    );
}

#[test]
fn oauth_callback_cannot_delete_sso_secrets() {
    let template = template();
    let sso = granted(&template, "oauth-callback", Kind::Sso);
    assert!(
        sso.is_empty(),
        "oauth-callback reaches tenants' SSO credentials: {sso:#?}"
    );
    // The control: disconnect still deletes the Box tokens it revoked.
    let boxes = granted(&template, "oauth-callback", Kind::Box);
    assert!(
        boxes.iter().any(|(a, _)| a == DELETE),
        "oauth-callback must delete the Box tokens on disconnect: {boxes:#?}"
    );
}

/// The whole matrix: every function, every kind of secret, every action, both ARN forms. A grant
/// the code does not use fails, and so does a missing one the code needs.
#[test]
fn each_function_reaches_only_the_secrets_and_actions_its_code_uses() {
    let template = template();
    let secrets = secrets_by_kind(&template);
    let mut problems = Vec::new();
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let binary = at(function, &["Metadata", "BuildProperties", "Binary"]);
        let binary = literal(binary).unwrap_or_else(|| panic!("{id} has no literal Binary"));
        let needs = needs(binary);
        for (kind, arn) in &secrets {
            let wanted: &[&str] = needs.iter().find(|(k, _)| k == kind).map(|(_, a)| *a).unwrap_or(&[]);
            for action in SECRET_ACTIONS {
                let allowed = allows(&template, function, action, arn);
                let expected = wanted.contains(action);
                if allowed != expected {
                    problems.push(format!(
                        "{binary}: {action} on {arn} is {} but the code {}",
                        if allowed { "allowed" } else { "denied" },
                        if expected { "needs it" } else { "never calls it" }
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "IAM and the code disagree:\n{}",
        problems.join("\n")
    );
}
