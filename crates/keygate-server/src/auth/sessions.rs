//! The authenticator's session half: session tokens, the memberships a session acts through,
//! and a session's rate limits at the gateway. Cached and invalidated like keys (`cache`).

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keygate_core::ratelimit::Decision;
use keygate_core::{CredentialKind, Digest, Parsed};
use keygate_store::{Account, SessionAuth};

use super::authenticator::Authenticator;
use super::cache::FoundMembership;
use super::spend::{self, LimitScope, LimitUse, UNNAMED};
use crate::error::ApiError;

impl Authenticator {
    /// A session token: valid, not revoked, within its idle and absolute timeouts. `sender`
    /// answers for it when it is unknown, as for keys.
    pub async fn authenticate_session(&self, credential: &str, sender: IpAddr) -> Result<Arc<SessionAuth>, ApiError> {
        let parsed = self.parse(credential).ok_or_else(ApiError::invalid_credentials)?;
        self.authenticate_parsed_session(&parsed, sender).await
    }

    /// `authenticate_session` for a credential already parsed.
    pub async fn authenticate_parsed_session(
        &self,
        parsed: &Parsed,
        sender: IpAddr,
    ) -> Result<Arc<SessionAuth>, ApiError> {
        if parsed.kind != CredentialKind::Session {
            return Err(ApiError::invalid_credentials());
        }
        let auth = match self.sessions.get(&parsed.digest, &self.epochs)? {
            Some(cached) => {
                self.metrics.cache_hits.inc();
                cached
            }
            None => {
                if let Some(d) = self.unknown_throttle.refusal(sender) {
                    self.metrics.unknown_credentials_throttled.inc();
                    return Err(ApiError::rate_limited(d));
                }
                self.metrics.cache_misses.inc();
                let before = self.epochs.changes();
                let found = self.store.session_by_digest(&parsed.digest.to_hex()).await?.map(Arc::new);
                if found.is_none() {
                    self.unknown_throttle.charge(sender);
                }
                self.sessions.keep(parsed.digest, found.clone(), &self.epochs, before);
                found
            }
        };
        let Some(auth) = auth else { return Err(ApiError::invalid_credentials()) };
        let now = Utc::now();
        let s = &auth.session;
        if s.revoked_at.is_some() || s.expires_at <= now || s.last_seen_at + self.session_idle <= now {
            return Err(ApiError::session_expired());
        }
        // Idle tracking writes at most once a minute per session, off the request's path.
        if now - s.last_seen_at > chrono::Duration::seconds(60) {
            self.touch_session(&parsed.digest, &auth, now);
        }
        Ok(auth)
    }

    fn touch_session(&self, digest: &Digest, auth: &Arc<SessionAuth>, now: DateTime<Utc>) {
        let mut updated = (**auth).clone();
        updated.session.last_seen_at = now;
        self.sessions.put(*digest, Some(Arc::new(updated)), &self.epochs);
        let store = Arc::clone(&self.store);
        let id = auth.session.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(&id, now).await {
                tracing::debug!(error = %e, "could not record session activity");
            }
        });
    }

    /// The session user's membership in `account_id` with the account, cached like keys.
    pub async fn membership(&self, account_id: &str, user_id: &str) -> Result<FoundMembership, ApiError> {
        let k = (account_id.to_owned(), user_id.to_owned());
        if let Some(found) = self.memberships.get(&k, &self.epochs)? {
            return Ok(found);
        }
        let before = self.epochs.changes();
        let account = self.store.account_by_id(account_id).await?;
        let found = match account {
            Some(a) => self.store.membership(account_id, user_id).await?.map(|m| Arc::new((a, m))),
            None => None,
        };
        self.memberships.keep(k, found.clone(), &self.epochs, before);
        Ok(found)
    }

    /// Limits for a session at the gateway, spending `cost`: per user, the plan's per-key
    /// default (`key_rate_limit_max`) and the route's limit; then the account's limits and
    /// quota, which every key and session of the account share (docs/api.md §7 "Plan limits").
    pub async fn limit_session(
        &self,
        user_id: &str,
        account: &Account,
        extra: Option<&(String, keygate_core::RateLimit)>,
        cost: u32,
    ) -> Result<Option<Decision>, ApiError> {
        let plan = self.plans.access(account, Utc::now());
        let user_bucket = plan.key_default.map(|_| format!("s:{}:{user_id}", account.id));
        let route_bucket = extra.map(|(name, _)| format!("r:{name}:{user_id}"));
        let own = plan.key_default.zip(user_bucket.as_deref()).map(|(limit, bucket)| LimitUse {
            name: &UNNAMED,
            scope: LimitScope::Key,
            bucket,
            limit,
        });
        let route = extra.zip(route_bucket.as_deref()).map(|((_, limit), bucket)| LimitUse {
            name: &UNNAMED,
            scope: LimitScope::Route,
            bucket,
            limit: *limit,
        });
        let buckets = spend::account_buckets(&account.id, &plan.account_limits);
        let limits = own.into_iter().chain(route).chain(spend::account_limit_uses(&plan.account_limits, &buckets));
        let quota = plan.quota.as_ref().map(|q| (account.id.as_str(), q));
        match self.spend(limits, quota, cost, false).await? {
            Ok(spent) => Ok(spent.rate),
            Err(refused) => Err(refused.refusal.to_api_error()),
        }
    }
}
