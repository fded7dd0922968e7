//! Where credentials travel (SPEC §2), the `RateLimit-*` answer headers, and the values of
//! the identity headers a granted credential is forwarded with.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

// Names as constants: a `&str` name is parsed and validated on every lookup.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The credential of a request: `X-API-Key` (any case, as HTTP says) or `Authorization: Bearer`.
/// Never the query string. An empty or non-ASCII value counts as sent but invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    /// Sent, but not readable as a credential (e.g. `Authorization: Basic …`).
    Malformed,
    Credential(&'a str),
}

pub fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(v) = headers.get(X_API_KEY) {
        return match v.to_str() {
            Ok(s) if !s.trim().is_empty() => Presented::Credential(s.trim()),
            _ => Presented::Malformed,
        };
    }
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let Ok(s) = v.to_str() else { return Presented::Malformed };
        let mut parts = s.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().map(str::trim).unwrap_or_default();
        return if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
            Presented::Credential(token)
        } else {
            Presented::Malformed
        };
    }
    Presented::None
}

/// The credential presented in `headers`, or the contract's 401: none sent is
/// `missing_credentials`, one that cannot be read `invalid_credentials`.
pub fn credential(headers: &HeaderMap) -> Result<&str, crate::error::ApiError> {
    match presented(headers) {
        Presented::None => Err(crate::error::ApiError::missing_credentials()),
        Presented::Malformed => Err(crate::error::ApiError::invalid_credentials()),
        Presented::Credential(c) => Ok(c),
    }
}

/// Who a granted request acts as, as the gateway's `X-Keygate-*` header values. Made once per
/// cached key (`CachedKey::gateway_identity`), per request for a session.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account_id: HeaderValue,
    pub user_id: Option<HeaderValue>,
    pub key_id: Option<HeaderValue>,
    pub credential: &'static str,
    pub scopes: HeaderValue,
    /// The account's plan name (`X-Keygate-Plan`).
    pub plan: Option<HeaderValue>,
    /// Base64url (no padding) of the key's metadata JSON (`X-Keygate-Metadata`); `None` when
    /// the metadata is empty, and for sessions.
    pub metadata: Option<HeaderValue>,
}

/// Written by the error type too (a 429 describes its limit), so it lives with it.
pub use crate::error::insert_rate_headers;

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn both_header_forms_are_read() {
        assert_eq!(presented(&h(&[("x-api-key", "kg_x")])), Presented::Credential("kg_x"));
        assert_eq!(presented(&h(&[("authorization", "Bearer kg_x")])), Presented::Credential("kg_x"));
        assert_eq!(presented(&h(&[("authorization", "bearer  kg_x ")])), Presented::Credential("kg_x"));
        assert_eq!(presented(&h(&[("authorization", "Basic abc")])), Presented::Malformed);
        assert_eq!(presented(&h(&[])), Presented::None);
    }
}
