//! The sample "company API" that `keygate demo` puts behind the gateway: companies, lists and
//! leads, in memory, on a loopback port. It has no authentication of its own — exactly the
//! API a company would put keygate in front of — and trusts the `X-Keygate-*` headers because
//! only keygate can reach it. Every answer echoes those headers as `seen_as`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Default)]
struct Data {
    /// Lists per user: the route is user-scoped, so there always is one.
    lists: HashMap<String, Vec<Value>>,
    leads: Vec<Value>,
}

type Shared = Arc<Mutex<Data>>;

/// Serves on `127.0.0.1:0` in the background; answers the bound address.
pub async fn start() -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route("/v1/companies", get(companies))
        .route("/v1/companies/{id}", get(company))
        .route("/v1/lists", get(lists).post(create_list))
        .route("/v1/leads", get(leads).post(create_lead))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({ "error": "no such path in the sample API" }))) })
        .with_state(Shared::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the demo upstream stopped");
        }
    });
    Ok(addr)
}

/// What keygate told us about the caller.
fn seen_as(h: &HeaderMap) -> Value {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    json!({
        "credential": get("x-keygate-credential"),
        "account_id": get("x-keygate-account-id"),
        "user_id": get("x-keygate-user-id"),
        "key_id": get("x-keygate-key-id"),
        "scopes": get("x-keygate-scopes"),
    })
}

fn lock(data: &Shared) -> std::sync::MutexGuard<'_, Data> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    data.lock().unwrap_or_else(PoisonError::into_inner)
}

const COMPANIES: &[(&str, &str, &str)] = &[
    ("cmp_1", "Acme Corporation", "acme.example"),
    ("cmp_2", "Globex", "globex.example"),
    ("cmp_3", "Initech", "initech.example"),
];

fn company_json(c: &(&str, &str, &str)) -> Value {
    json!({ "id": c.0, "name": c.1, "domain": c.2 })
}

async fn companies(h: HeaderMap) -> Json<Value> {
    Json(json!({ "items": COMPANIES.iter().map(company_json).collect::<Vec<_>>(), "seen_as": seen_as(&h) }))
}

async fn company(h: HeaderMap, Path(id): Path<String>) -> Response {
    match COMPANIES.iter().find(|c| c.0 == id) {
        Some(c) => Json(json!({ "company": company_json(c), "seen_as": seen_as(&h) })).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "no such company" }))).into_response(),
    }
}

fn user_of(h: &HeaderMap) -> String {
    h.get("x-keygate-user-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned()
}

async fn lists(State(data): State<Shared>, h: HeaderMap) -> Json<Value> {
    let items = lock(&data).lists.get(&user_of(&h)).cloned().unwrap_or_default();
    Json(json!({ "items": items, "seen_as": seen_as(&h) }))
}

async fn create_list(State(data): State<Shared>, h: HeaderMap, body: Option<Json<Value>>) -> (StatusCode, Json<Value>) {
    let name = body.as_ref().and_then(|b| b.get("name")).and_then(Value::as_str).unwrap_or("Untitled list").to_owned();
    let mut d = lock(&data);
    let mine = d.lists.entry(user_of(&h)).or_default();
    let list = json!({ "id": format!("lst_{}", mine.len() + 1), "name": name });
    mine.push(list.clone());
    (StatusCode::CREATED, Json(json!({ "list": list, "seen_as": seen_as(&h) })))
}

async fn leads(State(data): State<Shared>, h: HeaderMap) -> Json<Value> {
    Json(json!({ "items": lock(&data).leads.clone(), "seen_as": seen_as(&h) }))
}

async fn create_lead(State(data): State<Shared>, h: HeaderMap, body: Option<Json<Value>>) -> (StatusCode, Json<Value>) {
    let mut d = lock(&data);
    let lead = json!({ "id": format!("lead_{}", d.leads.len() + 1), "data": body.map(|b| b.0).unwrap_or(Value::Null) });
    d.leads.push(lead.clone());
    (StatusCode::CREATED, Json(json!({ "lead": lead, "seen_as": seen_as(&h) })))
}
