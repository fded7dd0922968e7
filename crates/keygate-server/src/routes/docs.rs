//! `/openapi.json` (generated from the handlers) and `/docs`, a self-contained reference page
//! rendered from the same document (no CDN, so it works offline and behind strict firewalls).

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "keygate", description = "Authentication and API keys for companies that sell an HTTP API. The contract: docs/api.md."),
    tags(
        (name = "identity", description = "Sign-up, sign-in, sessions, the user"),
        (name = "accounts", description = "Accounts, members and data roles"),
        (name = "keys", description = "API keys and verify"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "operator", description = "The deployment's operator API"),
        (name = "operations", description = "Health, readiness, metrics"),
    ),
    modifiers(&Security)
)]
struct Base;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Verify's callers (docs/api.md, "Verify callers").
        components.add_security_scheme(
            "verifier_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A verifier token from `[verify] tokens` (or the operator token). Not needed from an address \
                         in `[verify] anonymous_from` (default loopback).",
                    ))
                    .build(),
            ),
        );
    }
}

pub(crate) fn base() -> Document {
    let mut doc = Base::openapi();
    doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
    doc
}

/// `/openapi.json`, `/docs`, and `/` for someone who opens the bare address in a browser: to the
/// dashboard when it is on, else to the API reference.
pub(crate) fn routes(doc: Arc<Document>, dashboard: bool) -> Router<AppState> {
    let json = Arc::new(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let page = Arc::new(render_page(&doc));
    let home = if dashboard { "/app" } else { "/docs" };
    Router::new()
        .route("/", get(move || async move { axum::response::Redirect::to(home) }))
        .route(
            "/openapi.json",
            get(move || {
                let json = Arc::clone(&json);
                async move { ([(header::CONTENT_TYPE, "application/json")], (*json).clone()) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = Arc::clone(&page);
                async move { Html((*page).clone()).into_response() }
            }),
        )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn render_page(doc: &Document) -> String {
    let mut rows = String::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                let summary = op.summary.clone().or_else(|| op.description.clone()).unwrap_or_default();
                let codes: Vec<String> = op.responses.responses.keys().cloned().collect();
                rows.push_str(&format!(
                    "<tr><td><code>{method}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                    escape(path),
                    escape(&summary),
                    escape(&codes.join(" "))
                ));
            }
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>keygate API reference</title><style>body{{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}}\
td,th{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}}code{{font-size:.9em}}</style></head>\
<body><h1>keygate API reference</h1><p>The machine-readable document is at <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1); \
the contract in prose is <code>docs/api.md</code>. Credentials: <code>X-API-Key: &lt;key&gt;</code> or <code>Authorization: Bearer &lt;key or session token&gt;</code>.</p>\
<table><thead><tr><th>Method</th><th>Path</th><th>What it does</th><th>Statuses</th></tr></thead><tbody>{rows}</tbody></table></body></html>"
    )
}
