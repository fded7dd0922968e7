//! `[[gateway.routes]]` checked as settings: what a route may name and where it may point.
//! Settings validation calls it, and the gateway compiles what it accepted (`gateway::routes`),
//! so it lives here, below both: the settings never import the gateway.

use http::Method;
use http::uri::Authority;
use keygate_core::{CredentialKind, Scope};

use super::RouteSettings;

/// Paths the management API (and the dashboard) own; no route may overlap them.
pub(crate) const RESERVED_PREFIXES: &[&str] = &[
    "/v1/register",
    "/v1/login",
    "/v1/logout",
    "/v1/user",
    "/v1/accounts",
    "/v1/keys",
    "/v1/audit",
    "/v1/usage",
    "/v1/admin",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/app",
];

/// Checks every route: a path prefix starting with `/`, an http upstream, a resource name,
/// known credential classes and actions, no overlap with the management API or another route.
pub(crate) fn validate_routes(routes: &[RouteSettings]) -> Result<(), String> {
    for (i, r) in routes.iter().enumerate() {
        let at = format!("gateway.routes[{i}] (prefix `{}`)", r.prefix);
        if !r.prefix.starts_with('/') || r.prefix.len() < 2 || r.prefix.contains(['?', '#', ' ', '%', '\\']) {
            return Err(format!("{at}: prefix must be a path like /v1/things"));
        }
        let p = r.prefix.trim_end_matches('/');
        if p.split('/').any(|s| s == "." || s == "..") {
            return Err(format!("{at}: prefix must not contain `.` or `..` segments"));
        }
        for reserved in RESERVED_PREFIXES {
            if overlaps(p, reserved) {
                return Err(format!("{at}: overlaps the management path {reserved}"));
            }
        }
        upstream_parts(&r.upstream).map_err(|m| format!("{at}: upstream `{}` {m}", r.upstream))?;
        if r.resource.is_empty() || r.resource == "*" || Scope::parse(&format!("{}:read", r.resource)).is_err() {
            return Err(format!("{at}: resource must be a lower-case name like `companies`"));
        }
        for c in &r.credentials {
            if kind_of(c).is_none() {
                return Err(format!("{at}: credentials: unknown class `{c}` (user_key, org_key, session)"));
            }
        }
        if r.credentials.is_empty() {
            return Err(format!("{at}: credentials must name at least one class"));
        }
        for (method, action) in &r.actions {
            let method_ok = method.parse::<Method>().is_ok() && method.bytes().all(|b| b.is_ascii_uppercase());
            if !method_ok || action == "*" || Scope::parse(&format!("x:{action}")).is_err() {
                return Err(format!(
                    "{at}: actions: `{method} = \"{action}\"` is not METHOD = \"action\" (e.g. POST = \"create\")"
                ));
            }
        }
        if let Some(rl) = &r.rate_limit {
            rl.validate().map_err(|m| format!("{at}: {m}"))?;
        }
        if r.cost > 1000 {
            return Err(format!("{at}: cost must be 0..=1000"));
        }
        if r.timeout_seconds == 0 || r.timeout_seconds > 3600 {
            return Err(format!("{at}: timeout_seconds must be 1..=3600"));
        }
        for other in &routes[..i] {
            if other.prefix.trim_end_matches('/') == p {
                return Err(format!("{at}: the same prefix is configured twice"));
            }
        }
    }
    Ok(())
}

pub(crate) fn kind_of(class: &str) -> Option<CredentialKind> {
    match class {
        "user_key" => Some(CredentialKind::UserKey),
        "org_key" => Some(CredentialKind::OrgKey),
        "session" => Some(CredentialKind::Session),
        _ => None,
    }
}

/// Authority and base path (without a trailing `/`) of an upstream URL; the scheme is always
/// `http`.
pub(crate) fn upstream_parts(url: &str) -> Result<(Authority, String), &'static str> {
    if url.starts_with("https://") {
        // No TLS client is linked in: keygate runs beside the API it protects and speaks plain
        // HTTP to it; a TLS hop to a remote upstream belongs to a sidecar or the network.
        return Err("uses https://, which the gateway does not speak: use an http:// upstream next to keygate");
    }
    if !url.starts_with("http://") {
        return Err("is not an http:// URL");
    }
    let uri = url.parse::<http::Uri>().map_err(|_| "is not a valid URL")?;
    let Some(authority) = uri.authority().cloned() else {
        return Err("has no host");
    };
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err("must be http://host[:port][/base-path] without credentials");
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must not carry a query or fragment");
    }
    Ok((authority, uri.path().trim_end_matches('/').to_owned()))
}

/// Whether two path prefixes can match a common path (`/v1/keys` and `/v1/keys/x`, or `/v1`
/// and `/v1/keys`), segment-wise.
fn overlaps(a: &str, b: &str) -> bool {
    let seg = |long: &str, short: &str| {
        long == short || long.starts_with(&format!("{short}/")) || short == "/" || short.is_empty()
    };
    seg(a, b) || seg(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str) -> RouteSettings {
        RouteSettings { credentials: vec!["user_key".into()], ..RouteSettings::new(prefix, upstream, "things") }
    }

    #[test]
    fn management_paths_are_reserved() {
        assert!(validate_routes(&[route("/v1/keys/x", "http://a")]).is_err());
        assert!(validate_routes(&[route("/v1", "http://a")]).is_err());
        assert!(validate_routes(&[route("/v1/keysmith", "http://a")]).is_ok());
        assert!(validate_routes(&[route("/v1/companies", "http://127.0.0.1:9")]).is_ok());
    }

    #[test]
    fn the_contract_lists_every_reserved_path() {
        let contract = include_str!("../../../../docs/api.md");
        for reserved in RESERVED_PREFIXES {
            assert!(contract.contains(&format!("`{reserved}`")), "docs/api.md §7 Gateway does not list {reserved}");
        }
    }

    #[test]
    fn bad_upstreams_are_refused() {
        for bad in ["ftp://a", "http://", "https://api.example.com", "http://a/?x=1", "http://u:p@a", "a:80"] {
            assert!(validate_routes(&[route("/v1/x", bad)]).is_err(), "{bad}");
        }
    }
}
