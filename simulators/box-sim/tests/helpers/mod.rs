//! Shared by the box-sim test files: start a simulator, a plain HTTP client, small request helpers.
#![allow(dead_code)]

use box_sim::{BoxSim, SimConfig};
use serde_json::Value;

/// Starts a simulator; every response it sends is checked against Box's OpenAPI file when the
/// file is present, and [`assert_contract`] (or the suite log) reports violations.
pub async fn sim(mut config: SimConfig) -> BoxSim {
    if config.contract_spec.is_none() {
        config.contract_spec = box_sim::contract::default_spec_path();
    }
    BoxSim::start(config).await.expect("simulator starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn get(sim: &BoxSim, token: &str, path_and_query: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}/2.0{path_and_query}", sim.api_base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn send_json(sim: &BoxSim, method: reqwest::Method, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .request(method, format!("{}/2.0{path}", sim.api_base()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn token_form(sim: &BoxSim, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(format!("{}/oauth2/token", sim.api_base()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn exchange_code(sim: &BoxSim, code: &str) -> (u16, Value) {
    token_form(
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
        ],
    )
    .await
}

pub async fn refresh(sim: &BoxSim, rt: &str) -> (u16, Value) {
    token_form(
        sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
        ],
    )
    .await
}

pub fn admin_token(sim: &BoxSim) -> String {
    sim.issue_tokens(&sim.primary_admin_id()).access_token
}

/// A plain user (role user, active) of the generated enterprise.
pub fn plain_user(sim: &BoxSim) -> box_sim::SimUser {
    sim.users()
        .into_iter()
        .find(|u| {
            u.role == box_sim::Role::User && !u.is_app_user && !u.is_external && u.status == box_sim::UserStatus::Active
        })
        .expect("a plain active user")
}

/// Every event of the admin_logs stream matching the query, following stream positions to the end.
pub async fn read_all_events(sim: &BoxSim, token: &str, extra: &str) -> (Vec<Value>, usize) {
    let mut pos = String::new();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let q = format!(
            "/events?stream_type=admin_logs&limit=500{extra}{}",
            if pos.is_empty() {
                String::new()
            } else {
                format!("&stream_position={pos}")
            }
        );
        let (s, body) = get(sim, token, &q).await;
        assert_eq!(s, 200, "{body}");
        pages += 1;
        let entries = body["entries"].as_array().unwrap().clone();
        assert_eq!(body["chunk_size"].as_u64().unwrap() as usize, entries.len());
        let next = body["next_stream_position"].as_str().unwrap().to_string();
        if entries.is_empty() {
            assert_eq!(next, pos.clone().max(next.clone()), "exhausted position stays put");
            return (all, pages);
        }
        all.extend(entries);
        pos = next;
    }
}
