//! Gateway routes: validated at start (as settings, `config::routes`), compiled once into what
//! the hot path needs (upstream parts, the permission for each method, the credential
//! requirements), matched per request by the longest prefix, segment-wise.

use std::time::Duration;

use http::uri::Authority;
use http::{HeaderValue, Method};
use keygate_core::{CredentialKind, RateLimit, Scope};

use crate::auth::Requirements;
use crate::config::RouteSettings;
use crate::config::routes::{kind_of, upstream_parts, validate_routes};

/// One route, compiled: everything a request needs is computed here once, not per request.
#[derive(Debug)]
pub(crate) struct Route {
    /// Without a trailing `/`.
    pub(crate) prefix: String,
    /// Where the upstream listens (`http://` only, see `upstream_parts`).
    pub(crate) authority: Authority,
    /// `Host` for the upstream: its authority, without the port when that is 80.
    pub(crate) host: HeaderValue,
    /// The upstream URL's own path (may be empty), prepended to the forwarded path.
    pub(crate) base_path: String,
    pub(crate) strip_prefix: bool,
    pub(crate) timeout: Duration,
    pub(crate) accepts_session: bool,
    /// The per-route limit with its bucket name (the prefix), as `AuthContext::extra_limit` wants it.
    pub(crate) extra_limit: Option<(String, RateLimit)>,
    /// Units one request spends of every limit and the quota (`cost`, default 1).
    pub(crate) cost: u32,
    read: Requirements,
    write: Requirements,
    overrides: Vec<(Method, Requirements)>,
}

impl Route {
    fn compile(r: &RouteSettings) -> Result<Self, String> {
        let (authority, base_path) =
            upstream_parts(&r.upstream).map_err(|m| format!("upstream `{}` {m}", r.upstream))?;
        let kinds: Vec<CredentialKind> = r.credentials.iter().filter_map(|c| kind_of(c)).collect();
        let user_scoped = !kinds.contains(&CredentialKind::OrgKey);
        let needs = |action: &str| Requirements {
            permissions: vec![Scope::required(&r.resource, action)],
            user_scoped,
            kinds: kinds.clone(),
        };
        let mut overrides = Vec::with_capacity(r.actions.len());
        for (method, action) in &r.actions {
            let m = method.parse::<Method>().map_err(|_| format!("actions: bad method `{method}`"))?;
            overrides.push((m, needs(action)));
        }
        let prefix = r.prefix.trim_end_matches('/').to_owned();
        let host = if authority.port_u16() == Some(80) { authority.host() } else { authority.as_str() };
        let host = HeaderValue::from_str(host)
            .map_err(|_| format!("upstream `{}` has a host that cannot be sent", r.upstream))?;
        Ok(Route {
            host,
            extra_limit: r.rate_limit.map(|l| (prefix.clone(), l)),
            cost: r.cost,
            prefix,
            authority,
            base_path,
            strip_prefix: r.strip_prefix,
            timeout: Duration::from_secs(r.timeout_seconds),
            accepts_session: kinds.contains(&CredentialKind::Session),
            read: needs("read"),
            write: needs("write"),
            overrides,
        })
    }

    /// What a request with `method` needs: the route's own action for it, else `read` for the
    /// safe methods (GET/HEAD/OPTIONS) and `write` for every other.
    pub(crate) fn requirements(&self, method: &Method) -> &Requirements {
        if let Some((_, r)) = self.overrides.iter().find(|(m, _)| m == method) {
            return r;
        }
        if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
            &self.read
        } else {
            &self.write
        }
    }

    /// Whether `path` falls under this route: the prefix itself or anything below it.
    fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The path to ask the upstream for: its base path, then the request path (without the
    /// prefix when `strip_prefix`), always starting with `/`.
    pub(crate) fn upstream_path_and_query(&self, path: &str, query: Option<&str>) -> String {
        let rest = if self.strip_prefix { &path[self.prefix.len().min(path.len())..] } else { path };
        let mut out = String::with_capacity(self.base_path.len() + rest.len() + query.map_or(0, |q| q.len() + 1) + 1);
        out.push_str(&self.base_path);
        if !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// The compiled routes, longest prefix first so the first match is the most specific.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub(crate) fn compile(routes: &[RouteSettings]) -> Result<Self, String> {
        validate_routes(routes)?;
        let mut compiled = routes
            .iter()
            .enumerate()
            .map(|(i, r)| Route::compile(r).map_err(|m| format!("gateway.routes[{i}]: {m}")))
            .collect::<Result<Vec<_>, _>>()?;
        compiled.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(RouteTable { routes: compiled })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route a path belongs to (longest prefix first), by index for `get`.
    pub(crate) fn position(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matches(path))
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}

/// A path an upstream could resolve differently than keygate matched it: dot segments
/// (`/v1/companies/../lists` would leave a public route for a user-scoped one once the
/// upstream normalises it), encoded dots or slashes, backslashes. Refused before any routing.
pub(crate) fn is_ambiguous(path: &str) -> bool {
    // Most paths have none of the three bytes any of the cases below needs: one pass decides.
    if !path.bytes().any(|b| matches!(b, b'\\' | b'%' | b'.')) {
        return false;
    }
    if path.contains('\\') {
        return true;
    }
    if path.contains('%') {
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
            return true;
        }
    }
    path.split('/').any(|s| s == "." || s == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str) -> RouteSettings {
        RouteSettings { credentials: vec!["user_key".into()], ..RouteSettings::new(prefix, upstream, "things") }
    }

    fn find<'a>(t: &'a RouteTable, path: &str) -> Option<&'a Route> {
        t.position(path).and_then(|i| t.get(i))
    }

    #[test]
    fn the_longest_prefix_wins_segment_wise() {
        let mut lists = route("/v1/lists/", "http://a:1/base/");
        lists.strip_prefix = true;
        let t = RouteTable::compile(&[route("/v1/l", "http://b:2"), lists, route("/v1/lists/shared", "http://c:3")])
            .expect("compiles");
        assert_eq!(find(&t, "/v1/lists").map(|r| r.prefix.as_str()), Some("/v1/lists"));
        assert_eq!(find(&t, "/v1/lists/7").map(|r| r.prefix.as_str()), Some("/v1/lists"));
        assert_eq!(find(&t, "/v1/lists/shared/1").map(|r| r.prefix.as_str()), Some("/v1/lists/shared"));
        assert!(find(&t, "/v1/listsx").is_none());
        assert!(find(&t, "/v1/lis").is_none());
        let r = find(&t, "/v1/lists/7").expect("route");
        assert_eq!(r.upstream_path_and_query("/v1/lists/7", Some("a=1")), "/base/7?a=1");
        assert_eq!(r.upstream_path_and_query("/v1/lists", None), "/base/");
    }

    #[test]
    fn actions_name_the_permission_per_method() {
        let mut leads = route("/v1/leads", "http://a");
        leads.actions.insert("POST".into(), "create".into());
        leads.credentials = vec!["user_key".into(), "org_key".into()];
        let t = RouteTable::compile(&[leads]).expect("compiles");
        let r = find(&t, "/v1/leads").expect("route");
        let perm = |m: Method| r.requirements(&m).permissions[0].to_string();
        assert_eq!(perm(Method::POST), "things:create");
        assert_eq!(perm(Method::GET), "things:read");
        assert_eq!(perm(Method::DELETE), "things:write");
        assert!(!r.requirements(&Method::GET).user_scoped);
        assert!(!r.accepts_session);
    }

    #[test]
    fn ambiguous_paths_are_spotted() {
        for bad in ["/v1/a/../b", "/v1/a/./b", "/v1/a/%2e%2e/b", "/v1/a%2Fb", "/v1\\a", "/v1/a/.."] {
            assert!(is_ambiguous(bad), "{bad}");
        }
        for ok in ["/v1/a/b", "/v1/a.b/..c", "/v1/a%20b"] {
            assert!(!is_ambiguous(ok), "{ok}");
        }
    }
}
