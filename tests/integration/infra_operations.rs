//! infra_operations: the template watches what goes wrong in production (HTTP 5xx, throttled
//! functions, connections that need a person to reconnect) and keeps the HTTP functions' capacity
//! when the syncs fan out. The `reauth_required` alarm counts a log field: a test here runs the
//! real status change against moto and applies the template's own metric filter to its JSON logs.

use std::path::Path;

use seatsync::connection::{ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync_tests::aws::TestAws;
use seatsync_tests::logs::Captured;
use serde_json::json;
use serde_yaml::Value;
use tracing_subscriber::EnvFilter;

use crate::infra_least_privilege::function_for_binary;
use crate::infra_template::{
    at, field, literal, one_or_many, ref_target, resources_of_type, template, untag, workspace_root,
};

/// A new account's concurrency limit, and the part Lambda never lets reservations take.
const ACCOUNT_CONCURRENCY: i64 = 1000;
const MIN_UNRESERVED: i64 = 100;
/// Concurrent invocations usage-sync needs besides the queue's: the scheduled fan-outs (full and
/// incremental can overlap, and Lambda may deliver an async event twice).
const FAN_OUT_HEADROOM: i64 = 2;

fn number(value: &Value, what: &str) -> i64 {
    match untag(value) {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{what} is not an integer: {value:?}"))
}

/// A `!Ref Parameter` with its default and bounds.
struct NumberParameter {
    name: String,
    default: i64,
    min: Option<i64>,
    max: Option<i64>,
}

fn number_parameter(template: &Value, value: &Value, what: &str) -> NumberParameter {
    let name = ref_target(value)
        .unwrap_or_else(|| panic!("{what} must be a parameter (!Ref), found {value:?}"))
        .to_owned();
    let parameter = at(template, &["Parameters", &name]);
    assert_eq!(
        field(parameter, "Type").and_then(literal),
        Some("Number"),
        "parameter {name} ({what}) must be a Number"
    );
    assert!(
        field(parameter, "Description")
            .and_then(literal)
            .is_some_and(|d| d.len() > 40),
        "parameter {name} ({what}) must say what it does and how to size it"
    );
    NumberParameter {
        default: number(at(parameter, &["Default"]), &format!("{name}.Default")),
        min: field(parameter, "MinValue").map(|v| number(v, &format!("{name}.MinValue"))),
        max: field(parameter, "MaxValue").map(|v| number(v, &format!("{name}.MaxValue"))),
        name,
    }
}

/// The function's events of one type.
fn events<'a>(function: &'a Value, event_type: &str) -> Vec<(String, &'a Value)> {
    let Some(Value::Mapping(events)) = field(at(function, &["Properties"]), "Events").map(untag) else {
        return Vec::new();
    };
    events
        .iter()
        .filter(|(_, e)| field(e, "Type").and_then(literal) == Some(event_type))
        .map(|(id, e)| (literal(id).unwrap_or("?").to_owned(), e))
        .collect()
}

#[test]
fn http_functions_keep_capacity_when_syncs_fan_out() {
    let template = template();
    let burst = number(
        at(
            &template,
            &[
                "Resources",
                "HttpApi",
                "Properties",
                "DefaultRouteSettings",
                "ThrottlingBurstLimit",
            ],
        ),
        "the API's ThrottlingBurstLimit",
    );

    let mut reserved_total = 0;
    let mut sqs_sources = 0;
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let props = at(function, &["Properties"]);
        let reserved = field(props, "ReservedConcurrentExecutions");
        let queues = events(function, "SQS");
        if !events(function, "HttpApi").is_empty() {
            assert!(queues.is_empty(), "{id}: an HTTP function must not also drain a queue");
            // A reservation on an HTTP function below the API's burst would throttle callers first.
            if let Some(value) = reserved {
                let p = number_parameter(&template, value, &format!("{id} ReservedConcurrentExecutions"));
                assert!(
                    p.default >= burst,
                    "{id}: reserved {} < the API burst {burst}",
                    p.default
                );
                reserved_total += p.default;
            }
            continue;
        }
        for (event_id, event) in &queues {
            sqs_sources += 1;
            // Without a cap, Lambda scales a queue's pollers to hundreds of concurrent 15-minute
            // syncs and takes the account's pool from the HTTP functions.
            let cap = field(at(event, &["Properties"]), "ScalingConfig")
                .and_then(|s| field(s, "MaximumConcurrency"))
                .unwrap_or_else(|| {
                    panic!("{id}.{event_id}: the SQS event source has no ScalingConfig.MaximumConcurrency")
                });
            let cap = number_parameter(&template, cap, &format!("{id}.{event_id} MaximumConcurrency"));
            assert!(
                cap.min.is_some_and(|m| m >= 2) && cap.max.is_some_and(|m| m <= 1000),
                "{}: SQS accepts 2..=1000, the parameter must enforce it",
                cap.name
            );
            assert!(
                (2..=50).contains(&cap.default),
                "{}: default {} is not modest",
                cap.name,
                cap.default
            );

            // The reservation caps every invocation of the function (fan-outs too) and must leave
            // room above the queue's cap: a throttled SQS delivery counts as a receive and goes to
            // the dead-letter queue after three.
            let reserved =
                reserved.unwrap_or_else(|| panic!("{id}: a queue consumer needs ReservedConcurrentExecutions"));
            let reserved = number_parameter(&template, reserved, &format!("{id} ReservedConcurrentExecutions"));
            assert!(
                reserved.default >= cap.default + FAN_OUT_HEADROOM,
                "{}: default {} leaves no room above {}={} for the fan-outs",
                reserved.name,
                reserved.default,
                cap.name,
                cap.default
            );
            assert!(
                reserved.min.is_some_and(|m| m > FAN_OUT_HEADROOM),
                "{}: 0 would stop the function and too little throttles every queue delivery",
                reserved.name
            );
            assert!(reserved.max.is_some(), "{}: needs a MaxValue", reserved.name);
            reserved_total += reserved.default;
        }
    }
    assert!(sqs_sources > 0, "no SQS event sources found: the sync is fed by one");
    assert!(
        ACCOUNT_CONCURRENCY - reserved_total >= MIN_UNRESERVED + burst,
        "the default reservations ({reserved_total}) leave less than Lambda's minimum unreserved \
         {MIN_UNRESERVED} plus the API burst {burst} in a {ACCOUNT_CONCURRENCY}-execution account"
    );
}

/// An alarm of the template on `namespace`/`metric`, optionally with a dimension equal to `!Ref`.
fn alarms_on<'a>(
    template: &'a Value,
    namespace: &str,
    metric: &str,
    dimension: Option<(&str, &str)>,
) -> Vec<(String, &'a Value)> {
    resources_of_type(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, alarm)| {
            let props = at(alarm, &["Properties"]);
            field(props, "Namespace").and_then(literal) == Some(namespace)
                && field(props, "MetricName").and_then(literal) == Some(metric)
                && dimension.is_none_or(|(name, target)| {
                    field(props, "Dimensions").is_some_and(|dims| {
                        one_or_many(dims).into_iter().any(|d| {
                            field(d, "Name").and_then(literal) == Some(name)
                                && field(d, "Value").and_then(ref_target) == Some(target)
                        })
                    })
                })
        })
        .collect()
}

/// The alarm notifies the topic on any occurrence in its period, and is quiet without data.
fn assert_alarms_on_any(id: &str, alarm: &Value) {
    let props = at(alarm, &["Properties"]);
    let actions: Vec<_> = field(props, "AlarmActions")
        .map(|a| one_or_many(a).into_iter().filter_map(ref_target).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"AlarmTopic"),
        "{id} must notify the AlarmTopic: {actions:?}"
    );
    assert_eq!(
        field(props, "Statistic").and_then(literal),
        Some("Sum"),
        "{id} Statistic"
    );
    assert_eq!(number(at(props, &["Threshold"]), "Threshold"), 0, "{id} Threshold");
    assert_eq!(
        field(props, "ComparisonOperator").and_then(literal),
        Some("GreaterThanThreshold"),
        "{id} ComparisonOperator"
    );
    assert_eq!(
        field(props, "TreatMissingData").and_then(literal),
        Some("notBreaching"),
        "{id}: no data means nothing went wrong"
    );
}

/// A CloudWatch Logs JSON filter of the one form used here, `{ $.a.b = "value" }`, as (path, value).
fn json_equality_filter(pattern: &str) -> (Vec<String>, String) {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON filter pattern: {pattern:?}"));
    let (left, right) = inner
        .split_once('=')
        .unwrap_or_else(|| panic!("not an equality filter: {pattern:?}"));
    let path = left
        .trim()
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("the selector must start with $.: {pattern:?}"));
    let value = right
        .trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("the value must be a quoted string: {pattern:?}"));
    (path.split('.').map(str::to_owned).collect(), value.to_owned())
}

/// Whether one JSON log line matches the filter.
fn filter_matches(filter: &(Vec<String>, String), line: &serde_json::Value) -> bool {
    let mut current = line;
    for key in &filter.0 {
        match current.get(key) {
            Some(next) => current = next,
            None => return false,
        }
    }
    current.as_str() == Some(filter.1.as_str())
}

const REAUTH_EVENT: &str = "reauth_required";

/// The metric filters on `log_group` that count the `reauth_required` transition, as
/// (filter, namespace, metric).
fn reauth_filters(template: &Value, log_group: &str) -> Vec<((Vec<String>, String), String, String)> {
    resources_of_type(template, "AWS::Logs::MetricFilter")
        .into_iter()
        .filter(|(_, f)| field(at(f, &["Properties"]), "LogGroupName").and_then(ref_target) == Some(log_group))
        .filter_map(|(_, f)| {
            let props = at(f, &["Properties"]);
            let pattern = json_equality_filter(literal(at(props, &["FilterPattern"]))?);
            if pattern.1 != REAUTH_EVENT {
                return None;
            }
            let transformation = one_or_many(at(props, &["MetricTransformations"]))[0];
            Some((
                pattern,
                literal(at(transformation, &["MetricNamespace"]))?.to_owned(),
                literal(at(transformation, &["MetricName"]))?.to_owned(),
            ))
        })
        .collect()
}

/// Function crates whose code can mark a connection `reauth_required` (they refresh Box tokens).
fn binaries_that_refresh_tokens() -> Vec<String> {
    let functions = workspace_root().join("functions");
    let mut found: Vec<String> = std::fs::read_dir(&functions)
        .expect("read functions/")
        .map(|e| e.expect("an entry").path())
        .filter(|dir| {
            std::fs::read_to_string(Path::new(dir).join("src/main.rs"))
                .is_ok_and(|main| main.contains("TokenProvider::new"))
        })
        .map(|dir| dir.file_name().expect("a crate folder").to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

#[test]
fn alarms_watch_5xx_throttles_and_reauth_required() {
    let template = template();

    let apis = resources_of_type(&template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1, "one HttpApi");
    let five_xx = alarms_on(&template, "AWS/ApiGateway", "5xx", Some(("ApiId", apis[0].0.as_str())));
    assert_eq!(
        five_xx.len(),
        1,
        "one alarm on the HTTP API's 5xx (dimension ApiId: !Ref {})",
        apis[0].0
    );
    assert_alarms_on_any(&five_xx[0].0, five_xx[0].1);

    for (id, _) in resources_of_type(&template, "AWS::Serverless::Function") {
        let throttles = alarms_on(
            &template,
            "AWS/Lambda",
            "Throttles",
            Some(("FunctionName", id.as_str())),
        );
        assert_eq!(
            throttles.len(),
            1,
            "one Throttles alarm for {id} (dimension FunctionName: !Ref {id})"
        );
        assert_alarms_on_any(&throttles[0].0, throttles[0].1);
    }

    let binaries = binaries_that_refresh_tokens();
    assert!(
        binaries.len() >= 2,
        "expected the sync and deactivate to refresh tokens: {binaries:?}"
    );
    for binary in binaries {
        let (id, function) = function_for_binary(&template, &binary);
        let log_group = at(function, &["Properties", "LoggingConfig", "LogGroup"]);
        let log_group = ref_target(log_group).unwrap_or_else(|| panic!("{id}: LogGroup must be !Ref a log group"));
        let filters = reauth_filters(&template, log_group);
        assert_eq!(
            filters.len(),
            1,
            "{id}: one metric filter on {log_group} for event = {REAUTH_EVENT}"
        );
        let (_, namespace, metric) = &filters[0];
        let alarms = alarms_on(&template, namespace, metric, None);
        assert_eq!(alarms.len(), 1, "one alarm on {namespace}/{metric}");
        assert_alarms_on_any(&alarms[0].0, alarms[0].1);
    }
}

fn connected() -> ConnectionRecord {
    serde_json::from_value(json!({
        "status": "connected",
        "method": "oauth",
        "enterprise_id": "9001",
        "enterprise_name": "Acme",
        "connected_by_box_id": "1",
        "connected_by_login": null,
        "connected_by_sub": "sub-1",
        "scopes": [],
        "connected_at": "2026-11-01T00:00:00Z",
        "activity_source": "box_events",
        "status_reason": null,
        "status_since": "2026-11-01T00:00:00Z",
    }))
    .expect("a connection record")
}

/// The functions' own log format (`seatsync::telemetry::init`), captured on this thread.
fn capture_json_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new("info"))
        .with_current_span(false)
        .with_target(true)
        .without_time()
        .with_writer(captured.clone())
        .finish();
    (captured.clone(), tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn each_transition_to_reauth_required_counts_once_in_the_alarm_metric() {
    let template = template();
    let (_, sync) = function_for_binary(&template, "usage-sync");
    let log_group = ref_target(at(sync, &["Properties", "LoggingConfig", "LogGroup"])).expect("a log group ref");
    let filters = reauth_filters(&template, log_group);
    assert_eq!(filters.len(), 1, "the usage-sync log group counts reauth_required");
    let filter = &filters[0].0;

    let aws = TestAws::new().await;
    let connections = Connections::new(aws.table());
    let tenant = TenantId::parse("acme").expect("a tenant id");
    connections.save(&tenant, &connected()).await.expect("save");

    let (logs, _guard) = capture_json_logs();
    let reauth = |reason: &str| connections.set_status(&tenant, ConnectionStatus::ReauthRequired, Some(reason.into()));
    reauth("Box refused the refresh token").await.expect("mark");
    // Already reauth_required: another refusal (another task, another instance) is no new transition.
    reauth("Box refused the refresh token again").await.expect("mark again");
    // Reconnected, then refused once more: a second transition.
    connections
        .set_status(&tenant, ConnectionStatus::Connected, None)
        .await
        .expect("reconnect");
    reauth("Box refused the new grant")
        .await
        .expect("mark after reconnecting");

    let text = logs.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}")))
        .collect();
    let counted: Vec<_> = lines.iter().filter(|l| filter_matches(filter, l)).collect();
    assert_eq!(
        counted.len(),
        2,
        "two transitions to reauth_required must each count once in the metric filter {filter:?}; logs:\n{text}"
    );
    for line in counted {
        assert_eq!(line["fields"]["tenant"], "acme", "the line names the tenant: {line}");
    }
}
