//! Okta's System Log (`GET /api/v1/logs`) as `sso-activity.md` describes it: SSWS tokens, the
//! `filter` expression, `since` (default 7 days ago, never older than the retention), `until`,
//! `limit`, `sortOrder`, `Link: <…>; rel="next"` paging with an opaque `after` cursor — and, like the
//! real one, a polling query (no `until`) whose next link never ends.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::server::{App, Core, Reply, Req, Running};
use crate::{Endpoint, Faults, SsoPerson};

pub const SSO_EVENT: &str = "user.authentication.sso";

#[derive(Debug, Clone)]
pub struct OktaConfig {
    pub seed: u64,
    /// The Box app instance id (`target.id` of the AppInstance target).
    pub app_instance_id: String,
    pub api_token: String,
    pub users: Vec<SsoPerson>,
    /// Events of other apps and other event types, mixed in at random times within the retention.
    pub other_app_events: usize,
    pub faults: Faults,
    /// The largest `limit` honoured; larger values are lowered to it.
    pub page_limit_max: usize,
    /// Older events are gone, and `since` is raised to `now - retention_days`.
    pub retention_days: i64,
}

impl Default for OktaConfig {
    fn default() -> Self {
        OktaConfig {
            seed: 42,
            app_instance_id: "0oa1boxapp9Xk2Lq4d7".into(),
            api_token: "00sim-okta-api-token".into(),
            users: Vec::new(),
            other_app_events: 0,
            faults: Faults::default(),
            page_limit_max: 1000,
            retention_days: 90,
        }
    }
}

#[derive(Debug, Clone)]
struct Event {
    published: DateTime<Utc>,
    uuid: String,
    event_type: &'static str,
    app: AppRef,
    person: usize,
    success: bool,
}

#[derive(Debug, Clone)]
enum AppRef {
    Box,
    Other(usize),
    None,
}

const OTHER_APPS: [(&str, &str); 3] = [
    ("0oa1slackapp00000001", "Slack"),
    ("0oa1zoomapp000000002", "Zoom"),
    ("0oa1jiraapp000000003", "Jira Software"),
];

struct Okta {
    config: OktaConfig,
    events: Vec<Event>,
    started: DateTime<Utc>,
    addr: std::sync::OnceLock<std::net::SocketAddr>,
}

/// A running Okta simulator. Stops on drop or [`OktaSim::shutdown`].
pub struct OktaSim {
    okta: Arc<Okta>,
    running: Running,
}

impl OktaSim {
    pub async fn start(config: OktaConfig) -> anyhow::Result<OktaSim> {
        anyhow::ensure!(config.page_limit_max > 0, "page_limit_max must be positive");
        let now = Utc::now().trunc_subsecs(3);
        let oldest = now - TimeDelta::days(config.retention_days);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x0C7A);
        let mut events = Vec::new();
        let mut push = |rng: &mut ChaCha8Rng, published: DateTime<Utc>, event_type, app, person, success| {
            let published = published.trunc_subsecs(3);
            if published >= oldest && published <= now {
                events.push(Event {
                    published,
                    uuid: sim_core::guid(rng),
                    event_type,
                    app,
                    person,
                    success,
                });
            }
        };
        for (i, p) in config.users.iter().enumerate() {
            for at in &p.sign_ins {
                push(&mut rng, *at, SSO_EVENT, AppRef::Box, i, true);
            }
            for at in &p.failed {
                push(&mut rng, *at, SSO_EVENT, AppRef::Box, i, false);
            }
        }
        let span_ms = (now - oldest).num_milliseconds().max(1);
        for _ in 0..config.other_app_events {
            if config.users.is_empty() {
                break;
            }
            let person = rng.random_range(0..config.users.len());
            let at = now - TimeDelta::milliseconds(rng.random_range(0..span_ms));
            let success = rng.random_bool(0.9);
            match rng.random_range(0..3) {
                0 => push(&mut rng, at, "user.session.start", AppRef::None, person, success),
                1 => push(
                    &mut rng,
                    at,
                    "user.authentication.auth_via_mfa",
                    AppRef::None,
                    person,
                    success,
                ),
                _ => {
                    let app = AppRef::Other(rng.random_range(0..OTHER_APPS.len()));
                    push(&mut rng, at, SSO_EVENT, app, person, success)
                }
            }
        }
        events.sort_by(|a, b| (a.published, &a.uuid).cmp(&(b.published, &b.uuid)));
        let core = Arc::new(Core::new(config.seed, config.faults.clone()));
        let okta = Arc::new(Okta {
            config,
            events,
            started: now,
            addr: std::sync::OnceLock::new(),
        });
        let running = Running::start(okta.clone(), core.clone()).await?;
        let _ = okta.addr.set(running.addr);
        Ok(OktaSim { okta, running })
    }

    /// `http://127.0.0.1:<port>`: the Okta org URL to configure the client with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr)
    }
    pub fn app_instance_id(&self) -> &str {
        &self.okta.config.app_instance_id
    }
    pub fn api_token(&self) -> &str {
        &self.okta.config.api_token
    }
    /// When the simulator started: events are placed relative to this instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.okta.started
    }
    /// The oldest instant the log still holds.
    pub fn retention_start(&self) -> DateTime<Utc> {
        self.okta.started - TimeDelta::days(self.okta.config.retention_days)
    }

    /// Every person's latest successful Box sign-in that the log still holds, keyed by lower-cased Box
    /// login. People without one are absent.
    pub fn ground_truth(&self) -> std::collections::HashMap<String, DateTime<Utc>> {
        let mut truth = std::collections::HashMap::new();
        for e in &self.okta.events {
            if e.success && matches!(e.app, AppRef::Box) && e.event_type == SSO_EVENT {
                let login = self.okta.config.users[e.person].box_login.to_lowercase();
                let slot = truth.entry(login).or_insert(e.published);
                *slot = (*slot).max(e.published);
            }
        }
        truth
    }

    /// Events in the log, all apps and types.
    pub fn event_count(&self) -> usize {
        self.okta.events.len()
    }
    /// Events a correct Box query returns (successes and failures of the Box app's SSO).
    pub fn box_event_count(&self) -> usize {
        self.okta
            .events
            .iter()
            .filter(|e| matches!(e.app, AppRef::Box) && e.event_type == SSO_EVENT)
            .count()
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn okta_error(status: u16, code: &str, summary: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{:x}", rand::rng().random::<u64>()),
            "errorCauses": [],
        }),
    )
}

/// One clause of the supported filter grammar: `field eq "value"`, joined by `and`.
#[derive(Debug)]
struct Clause {
    field: String,
    value: String,
}

fn parse_filter(filter: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        let (field, after) = rest.split_once(' ').ok_or("expected `field eq \"value\"`")?;
        let after = after.trim_start();
        let after = after
            .strip_prefix("eq ")
            .ok_or_else(|| format!("only `eq` is supported, in `{rest}`"))?
            .trim_start();
        let after = after.strip_prefix('"').ok_or("values must be quoted")?;
        let (value, after) = after.split_once('"').ok_or("unterminated string")?;
        if ![
            "eventType",
            "target.id",
            "actor.id",
            "actor.alternateId",
            "outcome.result",
        ]
        .contains(&field)
        {
            return Err(format!("unsupported field {field}"));
        }
        clauses.push(Clause {
            field: field.to_string(),
            value: value.to_string(),
        });
        let after = after.trim_start();
        rest = match after.strip_prefix("and ") {
            Some(r) => r.trim_start(),
            None if after.is_empty() => "",
            None => return Err(format!("expected `and`, found `{after}`")),
        };
    }
    Ok(clauses)
}

fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc))
}

fn encode_cursor(e: (DateTime<Utc>, &str)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", e.0.timestamp_millis(), e.1))
}

fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (ms, uuid) = raw.split_once(':')?;
    Some((DateTime::from_timestamp_millis(ms.parse().ok()?)?, uuid.to_string()))
}

impl Okta {
    fn matches(&self, e: &Event, clauses: &[Clause]) -> bool {
        let person = &self.config.users[e.person];
        clauses.iter().all(|c| match c.field.as_str() {
            "eventType" => e.event_type == c.value,
            "target.id" => match e.app {
                AppRef::Box => self.config.app_instance_id == c.value,
                AppRef::Other(i) => OTHER_APPS[i].0 == c.value,
                AppRef::None => actor_id(e.person) == c.value,
            },
            "actor.id" => actor_id(e.person) == c.value,
            "actor.alternateId" => person.idp_login == c.value,
            "outcome.result" => (if e.success { "SUCCESS" } else { "FAILURE" }) == c.value,
            _ => false,
        })
    }

    fn render(&self, e: &Event) -> Value {
        let person = &self.config.users[e.person];
        let actor = json!({
            "id": actor_id(e.person),
            "type": "User",
            "alternateId": person.idp_login,
            "displayName": person.display_name(),
            "detailEntry": null,
        });
        let target = match e.app {
            AppRef::Box => json!([
                {"id": self.config.app_instance_id, "type": "AppInstance", "alternateId": "Box",
                 "displayName": "Box", "detailEntry": {"signOnModeType": "SAML_2_0"}},
                {"id": format!("0ua{:017}", e.person), "type": "AppUser", "alternateId": person.app_user_name(),
                 "displayName": person.display_name(), "detailEntry": null},
            ]),
            AppRef::Other(i) => json!([
                {"id": OTHER_APPS[i].0, "type": "AppInstance", "alternateId": OTHER_APPS[i].1,
                 "displayName": OTHER_APPS[i].1, "detailEntry": {"signOnModeType": "SAML_2_0"}},
                {"id": format!("0ub{:017}", e.person), "type": "AppUser", "alternateId": person.idp_login,
                 "displayName": person.display_name(), "detailEntry": null},
            ]),
            AppRef::None => json!([
                {"id": actor_id(e.person), "type": "User", "alternateId": person.idp_login,
                 "displayName": person.display_name(), "detailEntry": null},
            ]),
        };
        let (result, reason) = if e.success {
            ("SUCCESS", Value::Null)
        } else {
            ("FAILURE", json!("VERIFICATION_ERROR"))
        };
        json!({
            "uuid": e.uuid,
            "published": fmt_time(e.published),
            "eventType": e.event_type,
            "version": "0",
            "severity": if e.success { "INFO" } else { "WARN" },
            "legacyEventType": if e.app.is_app() { json!("app.auth.sso") } else { Value::Null },
            "displayMessage": if e.app.is_app() { "User single sign on to app" } else { "User login to Okta" },
            "actor": actor,
            "client": {
                "userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "CHROME"},
                "zone": "null",
                "device": "Computer",
                "id": null,
                "ipAddress": "203.0.113.7",
                "geographicalContext": {"city": "Berlin", "state": "Land Berlin", "country": "Germany", "postalCode": null, "geolocation": {"lat": 52.52, "lon": 13.4}},
            },
            "outcome": {"result": result, "reason": reason},
            "target": target,
            "transaction": {"type": "WEB", "id": format!("tx{}", &e.uuid[0..8]), "detail": {}},
            "debugContext": {"debugData": {"requestUri": "/app/box/sso/saml"}},
            "authenticationContext": {"authenticationStep": 0, "externalSessionId": "102sim"},
            "securityContext": {},
            "request": {"ipChain": []},
        })
    }
}

impl AppRef {
    fn is_app(&self) -> bool {
        !matches!(self, AppRef::None)
    }
}

fn actor_id(person: usize) -> String {
    format!("00u{person:017}")
}

impl App for Okta {
    fn route(&self, method: &http::Method, path: &str) -> Option<Endpoint> {
        (method == http::Method::GET && path.trim_end_matches('/') == "/api/v1/logs").then_some(Endpoint::OktaLogs)
    }

    fn fault_reply(&self, _ep: Endpoint, status: u16, retry_after_secs: u64) -> Reply {
        match status {
            429 => {
                let reset = Utc::now().timestamp() + retry_after_secs as i64;
                okta_error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                )
                .header("X-Rate-Limit-Limit", "120")
                .header("X-Rate-Limit-Remaining", "0")
                .header("X-Rate-Limit-Reset", reset.to_string())
            }
            401 => okta_error(401, "E0000011", "Invalid token provided"),
            403 => okta_error(
                403,
                "E0000006",
                "You do not have permission to perform the requested action",
            ),
            s if s >= 500 => okta_error(s, "E0000009", "Internal Server Error"),
            s => okta_error(s, "E0000001", "Api validation failed"),
        }
    }

    fn handle(&self, _ep: Endpoint, req: &Req) -> Reply {
        let token_ok = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("SSWS "))
            .is_some_and(|t| t.trim() == self.config.api_token);
        if !token_ok {
            return okta_error(401, "E0000011", "Invalid token provided");
        }
        let bad = |what: &str| okta_error(400, "E0000001", &format!("Api validation failed: {what}"));
        let clauses = match req.q("filter").map(parse_filter).transpose() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return bad(&format!("filter ({e})")),
        };
        let now = Utc::now();
        let oldest = now - TimeDelta::days(self.config.retention_days);
        let since = match req.q("since").map(|v| parse_time(v).ok_or(v)).transpose() {
            Ok(s) => s.unwrap_or(now - TimeDelta::days(7)).max(oldest),
            Err(_) => return bad("since"),
        };
        let until = match req.q("until").map(|v| parse_time(v).ok_or(v)).transpose() {
            Ok(u) => u,
            Err(_) => return bad("until"),
        };
        if until.is_some_and(|u| u < since) {
            return bad("since must be before until");
        }
        let limit = match req.q("limit").map(str::parse::<usize>).transpose() {
            Ok(l) => l.unwrap_or(100).clamp(1, self.config.page_limit_max),
            Err(_) => return bad("limit"),
        };
        let descending = match req.q("sortOrder").unwrap_or("ASCENDING") {
            "ASCENDING" => false,
            "DESCENDING" => true,
            _ => return bad("sortOrder"),
        };
        let after = match req.q("after").map(|a| decode_cursor(a).ok_or(a)).transpose() {
            Ok(a) => a,
            Err(_) => return bad("after"),
        };

        let in_window = |e: &&Event| e.published >= since && until.is_none_or(|u| e.published < u);
        let past_cursor = |e: &&Event| match &after {
            None => true,
            Some((t, id)) if descending => (e.published, &e.uuid) < (*t, id),
            Some((t, id)) => (e.published, &e.uuid) > (*t, id),
        };
        let selected: Box<dyn Iterator<Item = &Event>> = if descending {
            Box::new(self.events.iter().rev())
        } else {
            Box::new(self.events.iter())
        };
        let page: Vec<&Event> = selected
            .filter(in_window)
            .filter(past_cursor)
            .filter(|e| self.matches(e, &clauses))
            .take(limit)
            .collect();

        let base = format!(
            "http://{}/api/v1/logs",
            self.addr.get().copied().unwrap_or(([127, 0, 0, 1], 0).into())
        );
        let self_link = {
            let mut u = url::Url::parse(&base).expect("loopback url");
            u.query_pairs_mut().extend_pairs(&req.query);
            u
        };
        let mut reply = Reply::json(200, Value::Array(page.iter().map(|e| self.render(e)).collect()))
            .header("Link", format!("<{self_link}>; rel=\"self\""));
        // A bounded query pages while pages are full; a polling one (no `until`) always offers a
        // next link, at the same cursor when nothing new arrived.
        let polling = until.is_none();
        if polling || page.len() == limit {
            let cursor = match page.last() {
                Some(e) => Some(encode_cursor((e.published, &e.uuid))),
                None => req.q("after").map(str::to_string),
            };
            let mut next = url::Url::parse(&base).expect("loopback url");
            {
                let mut q = next.query_pairs_mut();
                for (k, v) in &req.query {
                    if k != "after" && k != "since" {
                        q.append_pair(k, v);
                    }
                }
                q.append_pair("since", &fmt_time(since));
                if let Some(c) = &cursor {
                    q.append_pair("after", c);
                }
            }
            reply = reply.header("Link", format!("<{next}>; rel=\"next\""));
        }
        reply
    }
}

impl std::ops::Deref for OktaSim {
    type Target = Running;

    /// Faults, counters and shutdown, as every provider's simulator has them.
    fn deref(&self) -> &Running {
        &self.running
    }
}
