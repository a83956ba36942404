//! The Reports API's activities listing: `filters`, the time window, page tokens, newest first,
//! and the SAML activities as Google renders them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::{Activity, Google, OTHER_REPORT_APPS, SAML_PARAMETERS, api_error, bad_request, fmt_time, not_authorized};
use crate::server::{Reply, Req, lock};

/// One `filters` clause: `name==value` or `name<>value`.
#[derive(Debug)]
struct Filter {
    name: String,
    equal: bool,
    value: String,
}

fn parse_filters(filters: &str) -> Result<Vec<Filter>, String> {
    filters
        .split(',')
        .filter(|c| !c.trim().is_empty())
        .map(|clause| {
            let (name, value, equal) = if let Some((n, v)) = clause.split_once("==") {
                (n, v, true)
            } else if let Some((n, v)) = clause.split_once("<>") {
                (n, v, false)
            } else {
                return Err(format!("Invalid filters: {clause}"));
            };
            let name = name.trim();
            if !SAML_PARAMETERS.contains(&name) {
                return Err(format!("Invalid filters: unknown parameter {name}"));
            }
            Ok(Filter {
                name: name.to_string(),
                equal,
                value: value.to_string(),
            })
        })
        .collect()
}

fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc))
}

fn encode_page_token(c: (DateTime<Utc>, i64)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.0.timestamp_millis(), c.1))
}

fn decode_page_token(s: &str) -> Option<(DateTime<Utc>, i64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (ms, q) = raw.split_once(':')?;
    Some((DateTime::from_timestamp_millis(ms.parse().ok()?)?, q.parse().ok()?))
}

impl Google {
    pub(super) fn activities(&self, req: &Req) -> Reply {
        let Some(subject) = self.bearer_subject(req) else {
            return api_error(
                401,
                "UNAUTHENTICATED",
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
        };
        let nth = {
            let mut handled = lock(&self.handled);
            *handled += 1;
            *handled
        };
        lock(&self.requests).push(req.query.clone());
        {
            let mut quota = lock(&self.quota_403);
            if let Some(i) = quota.iter().position(|n| *n == nth) {
                quota.remove(i);
                return api_error(
                    403,
                    "PERMISSION_DENIED",
                    "userRateLimitExceeded",
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
                );
            }
        }
        if !subject.is_some_and(|s| self.config.admin_email.eq_ignore_ascii_case(&s)) {
            return not_authorized();
        }
        let segs: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
        let (user_key, application) = (segs[segs.len() - 3], segs[segs.len() - 1]);
        if application != "saml" {
            if OTHER_REPORT_APPS.contains(&application) {
                return Reply::json(200, json!({"kind": "admin#reports#activities", "etag": "\"sim\""}));
            }
            return bad_request(&format!("Invalid value '{application}' for applicationName"));
        }
        if req.q("customerId").is_some_and(|c| c != self.config.customer_id) {
            return not_authorized();
        }
        let event_name = req.q("eventName");
        if event_name.is_some_and(|e| !matches!(e, "login_success" | "login_failure")) {
            return bad_request("Invalid eventName");
        }
        let filters = match req.q("filters").map(parse_filters).transpose() {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => return bad_request(&e),
        };
        let now = Utc::now();
        let oldest = now - TimeDelta::days(self.config.retention_days);
        let start = match req.q("startTime").map(|v| parse_time(v).ok_or(v)).transpose() {
            Ok(s) => s.unwrap_or(oldest).max(oldest),
            Err(_) => return bad_request("Invalid value for startTime"),
        };
        let end = match req.q("endTime").map(|v| parse_time(v).ok_or(v)).transpose() {
            Ok(e) => e.unwrap_or(now),
            Err(_) => return bad_request("Invalid value for endTime"),
        };
        if end < start {
            return bad_request("Start time must be less than or equal to the end time");
        }
        let max = match req.q("maxResults").map(str::parse::<usize>).transpose() {
            Ok(m) => m.unwrap_or(1000),
            Err(_) => return bad_request("Invalid value for maxResults"),
        };
        if !(1..=1000).contains(&max) {
            return bad_request("Invalid value for maxResults: must be within [1, 1000]");
        }
        let after = match req.q("pageToken").map(|t| decode_page_token(t).ok_or(t)).transpose() {
            Ok(a) => a,
            Err(_) => return bad_request("Invalid value for pageToken"),
        };
        let users = &self.config.users;
        let keep = |a: &&Activity| {
            a.at >= start
                && a.at <= end
                && after.is_none_or(|c| a.cursor() < c)
                && event_name.is_none_or(|e| a.event_name() == e)
                && (user_key == "all" || users[a.person].idp_login.eq_ignore_ascii_case(user_key))
                && filters.iter().all(|f| {
                    let value = match f.name.as_str() {
                        "application_name" => Some(a.app()),
                        "initiated_by" => Some("idp"),
                        "orgunit_path" => Some("/"),
                        "failure_type" if !a.success => Some("failure_app_not_configured_for_user"),
                        _ => None,
                    };
                    (value == Some(f.value.as_str())) == f.equal
                })
        };
        let mut matching = self.activities.iter().filter(keep);
        let page: Vec<&Activity> = matching.by_ref().take(max).collect();
        let more = matching.next().is_some();
        let mut body = json!({"kind": "admin#reports#activities", "etag": "\"sim\""});
        if !page.is_empty() {
            body["items"] = Value::Array(page.iter().map(|a| self.render(a)).collect());
        }
        if more && let Some(last) = page.last() {
            body["nextPageToken"] = json!(encode_page_token(last.cursor()));
        }
        Reply::json(200, body)
    }

    fn render(&self, a: &Activity) -> Value {
        let p = &self.config.users[a.person];
        let mut parameters = vec![
            json!({"name": "application_name", "value": a.app()}),
            json!({"name": "initiated_by", "value": "idp"}),
            json!({"name": "orgunit_path", "value": "/"}),
        ];
        if a.success {
            parameters.push(json!({"name": "saml_status_code", "value": "SUCCESS_URI"}));
        } else {
            parameters.push(json!({"name": "failure_type", "value": "failure_app_not_configured_for_user"}));
            parameters.push(json!({"name": "saml_status_code", "value": "REQUESTER_URI"}));
            parameters.push(json!({"name": "saml_second_level_status_code", "value": "REQUEST_DENIED_URI"}));
        }
        json!({
            "kind": "admin#reports#activity",
            "id": {
                "time": fmt_time(a.at),
                "uniqueQualifier": a.qualifier.to_string(),
                "applicationName": "saml",
                "customerId": self.config.customer_id,
            },
            "etag": format!("\"sim/{}\"", a.qualifier),
            "actor": {"callerType": "USER", "email": p.idp_login, "profileId": format!("1{:020}", a.person)},
            "ipAddress": "203.0.113.7",
            "events": [{"type": "login", "name": a.event_name(), "parameters": parameters}],
        })
    }
}
