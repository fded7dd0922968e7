//! Scopes (`resource:action`, `*` on either side) and the permission algebra of docs/api.md §1
//! Concepts.
//!
//! One decision is ours: the action `write` is the umbrella of every action that is not
//! `read`, so a `lists:write` key may also call a route whose `POST` is named `create`. The
//! converse does not hold: `leads:create` grants nothing else.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a scope is `resource:action` of [a-z0-9_.-] or `*` on either side, at most 100 characters")]
pub struct ScopeError;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    resource: String,
    action: String,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let (resource, action) = s.split_once(':').ok_or(ScopeError)?;
        let part_ok = |p: &str| {
            p == "*"
                || (!p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)))
        };
        if s.len() > 100 || !part_ok(resource) || !part_ok(action) {
            return Err(ScopeError);
        }
        Ok(Scope { resource: resource.to_owned(), action: action.to_owned() })
    }

    /// The permission a request needs: a concrete resource and action.
    pub fn required(resource: &str, action: &str) -> Self {
        Scope { resource: resource.to_owned(), action: action.to_owned() }
    }

    pub fn full_access() -> Self {
        Scope { resource: "*".into(), action: "*".into() }
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    /// Whether this pattern grants everything `other` grants (`other` may itself be a pattern).
    pub fn covers(&self, other: &Scope) -> bool {
        let resource = self.resource == "*" || self.resource == other.resource;
        let action = self.action == "*"
            || self.action == other.action
            || (self.action == "write" && other.action != "read" && other.action != "*");
        resource && action
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of scope patterns; a permission is granted when any pattern covers it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        ScopeSet(scopes)
    }

    pub fn full_access() -> Self {
        ScopeSet(vec![Scope::full_access()])
    }

    pub fn parse_all<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, ScopeError> {
        items.into_iter().map(Scope::parse).collect::<Result<Vec<_>, _>>().map(ScopeSet::new)
    }

    pub fn allows(&self, wanted: &Scope) -> bool {
        self.0.iter().any(|s| s.covers(wanted))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `a b c` — the form of the `X-Keygate-Scopes` header.
    pub fn to_header_value(&self) -> String {
        self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    }
}

/// Effective permissions of a credential: its scopes, intersected with its data role's
/// permissions when it has one (docs/api.md §1 Concepts). A session token has `*:*` and no role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub scopes: ScopeSet,
    pub role: Option<ScopeSet>,
}

impl Permissions {
    pub fn full_access() -> Self {
        Permissions { scopes: ScopeSet::full_access(), role: None }
    }

    pub fn allows(&self, wanted: &Scope) -> bool {
        self.scopes.allows(wanted) && self.role.as_ref().is_none_or(|r| r.allows(wanted))
    }

    /// Whether a new key with `scopes` would stay within these permissions: every requested
    /// pattern must be covered by the scopes and, when there is a role, by the role too.
    pub fn covers_all(&self, scopes: &ScopeSet) -> bool {
        scopes.iter().all(|s| self.allows(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Scope {
        Scope::parse(x).expect("valid scope")
    }

    #[test]
    fn parsing_accepts_the_contract_forms() {
        for ok in ["companies:read", "*:read", "lists:*", "*:*", "leads:create", "audit:read"] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "read", ":read", "companies:", "Companies:read", "a:b:c", "a b:read"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_cover_either_side() {
        assert!(s("*:read").covers(&s("companies:read")));
        assert!(!s("*:read").covers(&s("companies:write")));
        assert!(s("lists:*").covers(&s("lists:write")));
        assert!(!s("lists:*").covers(&s("leads:read")));
        assert!(s("*:*").covers(&s("*:read")));
        assert!(!s("*:read").covers(&s("*:*")));
    }

    #[test]
    fn write_is_the_umbrella_of_non_read_actions() {
        assert!(s("leads:write").covers(&s("leads:create")));
        assert!(!s("leads:write").covers(&s("leads:read")));
        assert!(!s("leads:create").covers(&s("leads:write")));
        assert!(!s("leads:write").covers(&s("leads:*")));
    }

    #[test]
    fn a_role_narrows_the_scopes() {
        let p = Permissions { scopes: ScopeSet::full_access(), role: Some(ScopeSet::new(vec![s("leads:create")])) };
        assert!(p.allows(&s("leads:create")));
        assert!(!p.allows(&s("leads:read")));
        assert!(!p.allows(&s("companies:read")));
    }

    #[test]
    fn a_minted_key_cannot_exceed_its_minter() {
        let minter = Permissions { scopes: ScopeSet::new(vec![s("*:read")]), role: None };
        assert!(minter.covers_all(&ScopeSet::new(vec![s("companies:read")])));
        assert!(!minter.covers_all(&ScopeSet::new(vec![s("*:*")])));
        assert!(!minter.covers_all(&ScopeSet::new(vec![s("lists:write")])));
    }
}
