//! The dashboard's stylesheet, script and icon, compiled into the binary (no CDN: the CSP
//! allows nothing but keygate itself). Served with an ETag so browsers revalidate cheaply
//! and never keep a stale copy after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("static/app.css") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("static/app.js") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_str!("static/favicon.svg") },
];

static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS.iter().map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body.as_bytes()))[..16])).collect()
});

pub(crate) async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == file) else {
        return super::pages::error_page(StatusCode::NOT_FOUND, "Page not found", "There is no such file.");
    };
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let etag_value = HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [cache, (header::ETAG, etag_value)]).into_response();
    }
    let content_type = (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    (StatusCode::OK, [content_type, cache, (header::ETAG, etag_value)], asset.body).into_response()
}
