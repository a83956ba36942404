//! Microsoft Graph: `GET /v1.0/auditLogs/signIns` (`$filter`, `$top`, `$skiptoken` paging, newest
//! first) and `GET /v1.0/users` with `signInActivity`.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Entra, NON_PREMIUM, OTHER_APPS, SignInRec, fmt_time, graph_error};
use crate::server::{Reply, Req};

#[derive(Debug, PartialEq)]
enum Cond {
    AppId(String),
    Created(&'static str, DateTime<Utc>),
    Upn(String),
    ErrorCode(i64),
}

fn parse_filter(filter: &str) -> Result<Vec<Cond>, String> {
    filter
        .split(" and ")
        .map(|clause| {
            let mut parts = clause.trim().splitn(3, ' ');
            let (field, op, value) = match (parts.next(), parts.next(), parts.next()) {
                (Some(f), Some(o), Some(v)) => (f, o, v.trim()),
                _ => return Err(format!("Invalid filter clause: {clause}")),
            };
            let quoted = || {
                value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .map(str::to_string)
                    .ok_or_else(|| format!("expected a quoted string in {clause}"))
            };
            match (field, op) {
                ("appId", "eq") => Ok(Cond::AppId(quoted()?)),
                ("userPrincipalName", "eq") => Ok(Cond::Upn(quoted()?)),
                ("status/errorCode", "eq") => value.parse().map(Cond::ErrorCode).map_err(|_| clause.to_string()),
                ("createdDateTime", op @ ("ge" | "gt" | "le" | "lt")) => {
                    let op = match op {
                        "ge" => "ge",
                        "gt" => "gt",
                        "le" => "le",
                        _ => "lt",
                    };
                    DateTime::parse_from_rfc3339(value)
                        .map(|t| Cond::Created(op, t.with_timezone(&Utc)))
                        .map_err(|_| format!("invalid DateTimeOffset literal {value}"))
                }
                _ => Err(format!("Invalid filter clause: {clause}")),
            }
        })
        .collect()
}

fn encode_token(at: DateTime<Utc>, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.timestamp()))
}

fn decode_token(s: &str) -> Option<(DateTime<Utc>, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (secs, id) = raw.split_once(':')?;
    Some((DateTime::from_timestamp(secs.parse().ok()?, 0)?, id.to_string()))
}

impl Entra {
    pub(super) fn sign_ins(&self, req: &Req) -> Reply {
        if !self.config.premium {
            return graph_error(
                403,
                NON_PREMIUM,
                "Neither tenant is B2C or tenant doesn't have premium license",
            );
        }
        let conds = match req.q("$filter").map(parse_filter).transpose() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return graph_error(400, "BadRequest", &e),
        };
        let top = match req.q("$top").map(str::parse::<usize>).transpose() {
            Ok(t) => t.unwrap_or(1000),
            Err(_) => return graph_error(400, "BadRequest", "Invalid $top value"),
        };
        if top == 0 || top > 1000 {
            return graph_error(400, "BadRequest", "$top must be between 1 and 1000");
        }
        let after = match req.q("$skiptoken").map(|t| decode_token(t).ok_or(t)).transpose() {
            Ok(a) => a,
            Err(_) => return graph_error(400, "BadRequest", "Invalid $skiptoken"),
        };
        let users = &self.config.users;
        let keep = |s: &&SignInRec| {
            after.as_ref().is_none_or(|(t, id)| (s.at, &s.id) < (*t, id))
                && conds.iter().all(|c| match c {
                    Cond::AppId(a) => self.app_id(s) == a,
                    Cond::Upn(u) => users[s.person].idp_login.eq_ignore_ascii_case(u),
                    Cond::ErrorCode(code) => s.error_code == *code,
                    Cond::Created("ge", t) => s.at >= *t,
                    Cond::Created("gt", t) => s.at > *t,
                    Cond::Created("le", t) => s.at <= *t,
                    Cond::Created(_, t) => s.at < *t,
                })
        };
        let page: Vec<&SignInRec> = self.sign_ins.iter().filter(keep).take(top).collect();
        let more = page.len() == top
            && page
                .last()
                .is_some_and(|l| self.sign_ins.iter().filter(keep).any(|s| (s.at, &s.id) < (l.at, &l.id)));
        let value: Vec<Value> = page.iter().map(|s| self.render_sign_in(s)).collect();
        let mut body = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",
            "value": value,
        });
        if more && let Some(last) = page.last() {
            let token = encode_token(last.at, &last.id);
            body["@odata.nextLink"] = json!(self.next_link("/v1.0/auditLogs/signIns", req, &token));
        }
        Reply::json(200, body)
    }

    /// Graph's `@odata.nextLink`: the same query with `$skiptoken` replaced.
    fn next_link(&self, path: &str, req: &Req, skiptoken: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in req.query.iter().filter(|(k, _)| k != "$skiptoken") {
            q.append_pair(k, v);
        }
        q.append_pair("$skiptoken", skiptoken);
        format!("{}{path}?{}", self.base(), q.finish())
    }

    fn app_id(&self, s: &SignInRec) -> &str {
        match s.other_app {
            None => &self.config.box_app_id,
            Some(i) => OTHER_APPS[i].0,
        }
    }

    fn render_sign_in(&self, s: &SignInRec) -> Value {
        let p = &self.config.users[s.person];
        let (failure, details) = match s.error_code {
            0 => (Value::Null, Value::Null),
            _ => (
                json!("Error validating credentials due to invalid username or password."),
                json!("The user didn't enter the right credentials."),
            ),
        };
        json!({
            "id": s.id,
            "createdDateTime": fmt_time(s.at),
            "userDisplayName": p.display_name(),
            "userPrincipalName": p.idp_login,
            "userId": format!("{:08x}-0000-4000-8000-{:012x}", s.person, s.person),
            "appId": self.app_id(s),
            "appDisplayName": s.other_app.map_or("Box", |i| OTHER_APPS[i].1),
            "ipAddress": "203.0.113.7",
            "clientAppUsed": "Browser",
            "correlationId": s.id,
            "conditionalAccessStatus": "notApplied",
            "isInteractive": true,
            "riskDetail": "none",
            "riskLevelAggregated": "none",
            "riskLevelDuringSignIn": "none",
            "riskState": "none",
            "riskEventTypes_v2": [],
            "resourceDisplayName": "Box",
            "resourceId": self.app_id(s),
            "status": {"errorCode": s.error_code, "failureReason": failure, "additionalDetails": details},
            "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "MacOs", "browser": "Chrome 120.0.0", "isCompliant": false, "isManaged": false, "trustType": ""},
            "location": {"city": "Berlin", "state": "Berlin", "countryOrRegion": "DE", "geoCoordinates": {"altitude": null, "latitude": 52.52, "longitude": 13.4}},
            "appliedConditionalAccessPolicies": [],
        })
    }

    pub(super) fn users(&self, req: &Req) -> Reply {
        let select: HashSet<&str> = req
            .q("$select")
            .map(|s| s.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let with_activity = select.contains("signInActivity");
        let top = match req.q("$top").map(str::parse::<usize>).transpose() {
            Ok(t) => t.unwrap_or(100),
            Err(_) => return graph_error(400, "Request_BadRequest", "Invalid $top value"),
        };
        if top == 0 || top > 999 {
            return graph_error(400, "Request_BadRequest", "Invalid page size specified: '$top'");
        }
        // Graph lowers the page size to 120 when signInActivity is selected.
        let top = if with_activity { top.min(120) } else { top };
        let skip = match req.q("$skiptoken").map(|t| decode_token(t).map(|(t, _)| t.timestamp())) {
            Some(Some(n)) if n >= 0 => n as usize,
            None => 0,
            _ => return graph_error(400, "Request_BadRequest", "Invalid $skiptoken"),
        };
        let users = &self.config.users;
        let page: Vec<Value> = (skip..users.len().min(skip + top))
            .map(|i| {
                let p = &users[i];
                let mut u = serde_json::Map::new();
                u.insert("id".into(), json!(format!("{:08x}-0000-4000-8000-{:012x}", i, i)));
                if select.is_empty() || select.contains("userPrincipalName") {
                    u.insert("userPrincipalName".into(), json!(p.idp_login));
                }
                if select.is_empty() || select.contains("mail") {
                    u.insert("mail".into(), json!(p.box_login));
                }
                if select.is_empty() || select.contains("displayName") {
                    u.insert("displayName".into(), json!(p.display_name()));
                }
                if with_activity {
                    let (last, success) = self.activity[i];
                    let activity = if last.is_none() {
                        Value::Null
                    } else {
                        json!({
                            "lastSignInDateTime": last.map(fmt_time),
                            "lastSignInRequestId": last.map(|_| format!("{i:032x}")),
                            "lastNonInteractiveSignInDateTime": null,
                            "lastNonInteractiveSignInRequestId": null,
                            "lastSuccessfulSignInDateTime": success.map(fmt_time),
                            "lastSuccessfulSignInRequestId": success.map(|_| format!("{i:031x}1")),
                        })
                    };
                    u.insert("signInActivity".into(), activity);
                }
                Value::Object(u)
            })
            .collect();
        let mut body = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "value": page,
        });
        let end = skip + top;
        if end < users.len() {
            let cursor = DateTime::from_timestamp(end as i64, 0).unwrap_or_default();
            let token = encode_token(cursor, "users");
            body["@odata.nextLink"] = json!(self.next_link("/v1.0/users", req, &token));
        }
        Reply::json(200, body)
    }
}
