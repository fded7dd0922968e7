//! A key as the hot path wants it: parsed once when it enters the cache, not on every request.

use std::sync::Arc;

use ipnet::IpNet;
use keygate_core::{Authority, Permissions, ScopeSet};
use keygate_store::{Account, ApiKey, KeyAuth};

#[derive(Debug)]
pub struct ResolvedKey {
    pub key: ApiKey,
    pub permissions: Permissions,
    pub allowlist: Vec<IpNet>,
    /// `None`: the account was deleted.
    pub account: Option<Account>,
    /// The user's current authority in the account (user keys); `None`: no longer a member.
    pub member_authority: Option<Authority>,
}

impl ResolvedKey {
    pub fn from_auth(auth: KeyAuth) -> Arc<Self> {
        // Stored scopes were validated when written; anything unparsable is dropped, which
        // can only narrow the key (fail closed).
        let scopes = ScopeSet::new(auth.key.scopes.iter().filter_map(|s| keygate_core::Scope::parse(s).ok()).collect());
        let role = auth
            .role_permissions
            .map(|p| ScopeSet::new(p.iter().filter_map(|s| keygate_core::Scope::parse(s).ok()).collect()));
        let allowlist = auth.key.ip_allowlist.iter().filter_map(|c| keygate_core::net::parse_cidr(c)).collect();
        Arc::new(ResolvedKey {
            permissions: Permissions { scopes, role },
            allowlist,
            account: auth.account,
            member_authority: auth.member_authority,
            key: auth.key,
        })
    }

    /// The key's authority, capped for a user key by its user's current authority.
    pub fn effective_authority(&self) -> Authority {
        match (self.key.class, self.member_authority) {
            (keygate_store::KeyClass::User, Some(member)) => self.key.authority.min(member),
            _ => self.key.authority,
        }
    }
}
