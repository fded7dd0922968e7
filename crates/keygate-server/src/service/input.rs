//! Input the rules check, whichever front end it came through: the fields of key mint and
//! patch bodies parsed into what the store takes, ids, account websites, and the collected
//! field errors of one answer. Pure: no I/O, so every rule is unit-tested here. It lives below
//! the front ends (not in `routes/`) because the services call it and imports point down.

use chrono::{DateTime, NaiveDate, Utc};
use keygate_core::id::{IdKind, looks_like};
use keygate_core::{RateLimit, ScopeSet};
use serde_json::{Value, json};

use crate::error::ApiError;

pub(crate) const MAX_METADATA_BYTES: usize = 4096;
pub(crate) const MAX_ALLOWLIST: usize = 100;
pub(crate) const MAX_SCOPES: usize = 100;

pub(crate) fn parse_name(name: &str) -> Result<String, ApiError> {
    let t = name.trim();
    let n = t.chars().count();
    if n == 0 || n > 100 || t.chars().any(char::is_control) {
        return Err(ApiError::invalid_field("name", "must be 1 to 100 characters"));
    }
    Ok(t.to_owned())
}

pub(crate) fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, ApiError> {
    if scopes.is_empty() || scopes.len() > MAX_SCOPES {
        return Err(ApiError::invalid_field("scopes", "must list 1 to 100 scopes"));
    }
    ScopeSet::parse_all(scopes.iter().map(String::as_str)).map_err(|e| ApiError::invalid_field("scopes", e.to_string()))
}

pub(crate) fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 time like 2026-12-31T00:00:00Z"))
}

/// `end_date` (`YYYY-MM-DD`): the key stops at 00:00 UTC that day.
pub(crate) fn parse_end_date(s: &str) -> Result<DateTime<Utc>, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::invalid_field("end_date", "must be a date like 2026-12-31"))
}

/// The expiry from either `expires_at` or `end_date` (not both).
pub(crate) fn expiry(expires_at: Option<&str>, end_date: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match (expires_at, end_date) {
        (Some(_), Some(_)) => Err(ApiError::invalid_field("end_date", "give expires_at or end_date, not both")),
        (Some(e), None) => parse_time("expires_at", e).map(Some),
        (None, Some(d)) => parse_end_date(d).map(Some),
        (None, None) => Ok(None),
    }
}

pub(crate) fn parse_rate_limit(r: &RateLimit) -> Result<RateLimit, ApiError> {
    r.validate().map_err(|m| ApiError::invalid_field("rate_limit", m))?;
    Ok(*r)
}

pub(crate) fn parse_usage_limit(n: i64) -> Result<i64, ApiError> {
    if n < 1 {
        return Err(ApiError::invalid_field("usage_limit", "must be a positive number"));
    }
    Ok(n)
}

/// CIDRs normalised (`10.1.2.3/8` → `10.0.0.0/8`, a bare address → `/32` or `/128`).
pub(crate) fn parse_allowlist(list: &[String]) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_ALLOWLIST {
        return Err(ApiError::invalid_field("ip_allowlist", "at most 100 entries"));
    }
    list.iter()
        .map(|c| {
            keygate_core::net::parse_cidr(c).map(|n| n.to_string()).ok_or_else(|| {
                ApiError::invalid_field("ip_allowlist", format!("`{c}` is not an IPv4 or IPv6 address or CIDR"))
            })
        })
        .collect()
}

pub(crate) fn parse_metadata(v: &Value) -> Result<Value, ApiError> {
    if !v.is_object() {
        return Err(ApiError::invalid_field("metadata", "must be a JSON object"));
    }
    if v.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::invalid_field("metadata", "must be at most 4096 bytes as JSON"));
    }
    Ok(v.clone())
}

/// A malformed id is answered 404 at once, without asking storage.
pub(crate) fn check_id(kind: IdKind, id: &str) -> Result<(), ApiError> {
    if looks_like(kind, id) { Ok(()) } else { Err(ApiError::not_found()) }
}

/// Collects field problems so one answer lists all of them (`details`).
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    pub(crate) fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let summary = self.0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ");
        let mut e = ApiError::invalid_request(format!("Invalid request: {summary}."));
        e.details = Some(json!(self.0.iter().map(|(f, m)| json!({ "field": f, "message": m })).collect::<Vec<_>>()));
        Err(e)
    }
}

/// An account's website: an `http(s)://` URL or a bare host with a company domain, at most
/// 2048 characters, no spaces or control characters. Answers it trimmed.
pub(crate) fn parse_url(raw: &str) -> Result<String, &'static str> {
    let url = raw.trim();
    let scheme_ok = match url.split_once("://") {
        Some((scheme, _)) => scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"),
        None => true,
    };
    if url.is_empty()
        || url.len() > 2048
        || !scheme_ok
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
        || keygate_core::validate::company_domain(url).is_none()
    {
        return Err("must be an http(s) URL or a domain such as https://acme.com");
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_date_means_midnight_utc() {
        let t = parse_end_date("2030-01-02").expect("date");
        assert_eq!(t.to_rfc3339(), "2030-01-02T00:00:00+00:00");
        assert!(parse_end_date("2030-13-01").is_err());
        assert!(expiry(Some("2030-01-01T00:00:00Z"), Some("2030-01-01")).is_err());
    }

    #[test]
    fn allowlists_are_normalised_and_bounded() {
        let got = parse_allowlist(&["10.1.2.3/8".into(), "2001:db8::1".into()]).expect("ok");
        assert_eq!(got, vec!["10.0.0.0/8".to_owned(), "2001:db8::1/128".to_owned()]);
        assert!(parse_allowlist(&["300.1.1.1".into()]).is_err());
    }

    #[test]
    fn metadata_is_a_bounded_object() {
        assert!(parse_metadata(&serde_json::json!({"team": "ops"})).is_ok());
        assert!(parse_metadata(&serde_json::json!([1])).is_err());
        assert!(parse_metadata(&serde_json::json!({"x": "y".repeat(5000)})).is_err());
    }

    #[test]
    fn names_and_scopes_are_checked() {
        assert!(parse_name("  ").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err());
        assert_eq!(parse_name(" ci ").expect("ok"), "ci");
        assert!(parse_scopes(&[]).is_err());
        assert!(parse_scopes(&["Companies:read".into()]).is_err());
    }
}
