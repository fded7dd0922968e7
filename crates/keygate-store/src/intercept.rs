//! A `Store` in front of another, which shows every call to an [`Interceptor`] before making
//! it: for tests and benchmarks that need a store that fails on demand (an outage) or counts
//! its calls, without writing the whole trait out once more for each.

use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use keygate_core::Authority;

use crate::model::*;
use crate::usage::*;
use crate::{Store, StoreResult};

/// Sees every store call, by method name, before it is made; an error is the call's answer.
pub trait Interceptor: Send + Sync + 'static {
    fn before(&self, method: &'static str) -> StoreResult<()>;
}

/// `inner`, with `interceptor` asked before each call. Derefs to the interceptor, so a test
/// reaches its switches and counters through the store it handed out.
pub struct Intercepted<I> {
    pub inner: Arc<dyn Store>,
    pub interceptor: I,
}

impl<I> Intercepted<I> {
    pub fn new(inner: Arc<dyn Store>, interceptor: I) -> Self {
        Intercepted { inner, interceptor }
    }
}

impl<I> Deref for Intercepted<I> {
    type Target = I;
    fn deref(&self) -> &I {
        &self.interceptor
    }
}

#[async_trait]
impl<I: Interceptor> Store for Intercepted<I> {
    async fn ping(&self) -> StoreResult<()> {
        self.interceptor.before("ping")?;
        self.inner.ping().await
    }

    async fn register(&self, user: User, account: Account, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("register")?;
        self.inner.register(user, account, audit).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.interceptor.before("user_by_email")?;
        self.inner.user_by_email(email).await
    }

    async fn user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        self.interceptor.before("user_by_id")?;
        self.inner.user_by_id(user_id).await
    }

    async fn update_user_name(&self, user_id: &str, name: &str, audit: Vec<NewAudit>) -> StoreResult<User> {
        self.interceptor.before("update_user_name")?;
        self.inner.update_user_name(user_id, name, audit).await
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        new_session: Session,
        audit: Vec<NewAudit>,
    ) -> StoreResult<()> {
        self.interceptor.before("change_password")?;
        self.inner.change_password(user_id, password_hash, new_session, audit).await
    }

    async fn user_memberships(&self, user_id: &str) -> StoreResult<Vec<UserMembership>> {
        self.interceptor.before("user_memberships")?;
        self.inner.user_memberships(user_id).await
    }

    async fn create_session(&self, session: Session, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("create_session")?;
        self.inner.create_session(session, audit).await
    }

    async fn session_by_digest(&self, digest: &str) -> StoreResult<Option<SessionAuth>> {
        self.interceptor.before("session_by_digest")?;
        self.inner.session_by_digest(digest).await
    }

    async fn touch_session(&self, session_id: &str, at: Time) -> StoreResult<()> {
        self.interceptor.before("touch_session")?;
        self.inner.touch_session(session_id, at).await
    }

    async fn revoke_session(&self, session_id: &str, at: Time) -> StoreResult<()> {
        self.interceptor.before("revoke_session")?;
        self.inner.revoke_session(session_id, at).await
    }

    async fn create_account(&self, account: Account, owner_user_id: &str, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("create_account")?;
        self.inner.create_account(account, owner_user_id, audit).await
    }

    async fn account_by_id(&self, account_id: &str) -> StoreResult<Option<Account>> {
        self.interceptor.before("account_by_id")?;
        self.inner.account_by_id(account_id).await
    }

    async fn update_account(
        &self,
        account_id: &str,
        name: Option<&str>,
        url: Option<Option<&str>>,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Account> {
        self.interceptor.before("update_account")?;
        self.inner.update_account(account_id, name, url, audit).await
    }

    async fn delete_account(&self, account_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("delete_account")?;
        self.inner.delete_account(account_id, at, audit).await
    }

    async fn set_plan(&self, account_id: &str, plan: &str, audit: Vec<NewAudit>) -> StoreResult<Account> {
        self.interceptor.before("set_plan")?;
        self.inner.set_plan(account_id, plan, audit).await
    }

    async fn set_account_limits(
        &self,
        account_id: &str,
        plan: Option<&str>,
        overrides: Option<&LimitOverrides>,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Account> {
        self.interceptor.before("set_account_limits")?;
        self.inner.set_account_limits(account_id, plan, overrides, audit).await
    }

    async fn list_accounts(&self, page: &PageRequest) -> StoreResult<Page<Account>> {
        self.interceptor.before("list_accounts")?;
        self.inner.list_accounts(page).await
    }

    async fn membership(&self, account_id: &str, user_id: &str) -> StoreResult<Option<Membership>> {
        self.interceptor.before("membership")?;
        self.inner.membership(account_id, user_id).await
    }

    async fn list_members(&self, account_id: &str, page: &PageRequest) -> StoreResult<Page<Member>> {
        self.interceptor.before("list_members")?;
        self.inner.list_members(account_id, page).await
    }

    async fn add_member(
        &self,
        account_id: &str,
        user_id: &str,
        authority: Authority,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Member> {
        self.interceptor.before("add_member")?;
        self.inner.add_member(account_id, user_id, authority, at, audit).await
    }

    async fn change_member_authority(
        &self,
        account_id: &str,
        user_id: &str,
        actor_authority: Authority,
        new: Authority,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Member> {
        self.interceptor.before("change_member_authority")?;
        self.inner.change_member_authority(account_id, user_id, actor_authority, new, audit).await
    }

    async fn remove_member(
        &self,
        account_id: &str,
        user_id: &str,
        actor_authority: Authority,
        is_self: bool,
        audit: Vec<NewAudit>,
    ) -> StoreResult<()> {
        self.interceptor.before("remove_member")?;
        self.inner.remove_member(account_id, user_id, actor_authority, is_self, audit).await
    }

    async fn create_role(&self, role: Role, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("create_role")?;
        self.inner.create_role(role, audit).await
    }

    async fn role(&self, account_id: &str, role_id: &str) -> StoreResult<Option<Role>> {
        self.interceptor.before("role")?;
        self.inner.role(account_id, role_id).await
    }

    async fn list_roles(&self, account_id: &str, page: &PageRequest) -> StoreResult<Page<Role>> {
        self.interceptor.before("list_roles")?;
        self.inner.list_roles(account_id, page).await
    }

    async fn update_role(
        &self,
        account_id: &str,
        role_id: &str,
        name: Option<&str>,
        permissions: Option<&[String]>,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Role> {
        self.interceptor.before("update_role")?;
        self.inner.update_role(account_id, role_id, name, permissions, at, audit).await
    }

    async fn delete_role(&self, account_id: &str, role_id: &str, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("delete_role")?;
        self.inner.delete_role(account_id, role_id, audit).await
    }

    async fn create_key(&self, key: NewKey, max_live_keys: Option<u32>, audit: Vec<NewAudit>) -> StoreResult<ApiKey> {
        self.interceptor.before("create_key")?;
        self.inner.create_key(key, max_live_keys, audit).await
    }

    async fn key_by_handle(&self, account_id: &str, handle: &str) -> StoreResult<Option<ApiKey>> {
        self.interceptor.before("key_by_handle")?;
        self.inner.key_by_handle(account_id, handle).await
    }

    async fn list_keys(
        &self,
        account_id: &str,
        filter: &KeyFilter,
        now: Time,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        self.interceptor.before("list_keys")?;
        self.inner.list_keys(account_id, filter, now, page).await
    }

    async fn update_key(
        &self,
        account_id: &str,
        key_id: &str,
        patch: &KeyPatch,
        audit: Vec<NewAudit>,
    ) -> StoreResult<ApiKey> {
        self.interceptor.before("update_key")?;
        self.inner.update_key(account_id, key_id, patch, audit).await
    }

    async fn revoke_key(&self, account_id: &str, key_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<ApiKey> {
        self.interceptor.before("revoke_key")?;
        self.inner.revoke_key(account_id, key_id, at, audit).await
    }

    async fn roll_key(
        &self,
        account_id: &str,
        key_id: &str,
        successor: NewKey,
        old_expires_at: Option<Time>,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<(ApiKey, ApiKey)> {
        self.interceptor.before("roll_key")?;
        self.inner.roll_key(account_id, key_id, successor, old_expires_at, at, audit).await
    }

    async fn key_auth_by_digest(&self, digest: &str) -> StoreResult<Option<KeyAuth>> {
        self.interceptor.before("key_auth_by_digest")?;
        self.inner.key_auth_by_digest(digest).await
    }

    async fn consume_usage(&self, key_id: &str, cost: i64, now: Time) -> StoreResult<Option<i64>> {
        self.interceptor.before("consume_usage")?;
        self.inner.consume_usage(key_id, cost, now).await
    }

    async fn record_usage(&self, deltas: &[UsageDelta]) -> StoreResult<()> {
        self.interceptor.before("record_usage")?;
        self.inner.record_usage(deltas).await
    }

    async fn key_usage(
        &self,
        account_id: &str,
        key_id: &str,
        granularity: Granularity,
        from: Time,
        to: Time,
    ) -> StoreResult<Vec<UsageBucket>> {
        self.interceptor.before("key_usage")?;
        self.inner.key_usage(account_id, key_id, granularity, from, to).await
    }

    async fn account_usage_by_day(&self, account_id: &str, from: Time, to: Time) -> StoreResult<Vec<UsageBucket>> {
        self.interceptor.before("account_usage_by_day")?;
        self.inner.account_usage_by_day(account_id, from, to).await
    }

    async fn account_usage_by_key(&self, account_id: &str, from: Time, to: Time) -> StoreResult<Vec<KeyUsageTotal>> {
        self.interceptor.before("account_usage_by_key")?;
        self.inner.account_usage_by_key(account_id, from, to).await
    }

    async fn prune_usage_hours(&self, before: Time, limit: u32) -> StoreResult<u64> {
        self.interceptor.before("prune_usage_hours")?;
        self.inner.prune_usage_hours(before, limit).await
    }

    async fn append_audit(&self, audit: Vec<NewAudit>) -> StoreResult<()> {
        self.interceptor.before("append_audit")?;
        self.inner.append_audit(audit).await
    }

    async fn list_audit(
        &self,
        account_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        self.interceptor.before("list_audit")?;
        self.inner.list_audit(account_id, filter, page).await
    }

    async fn login_failures(&self, email_key: &str, ip: &str) -> StoreResult<LoginFailures> {
        self.interceptor.before("login_failures")?;
        self.inner.login_failures(email_key, ip).await
    }

    async fn record_login_failure(&self, email_key: &str, ip: &str, at: Time) -> StoreResult<()> {
        self.interceptor.before("record_login_failure")?;
        self.inner.record_login_failure(email_key, ip, at).await
    }

    async fn record_login_success(&self, email_key: &str, ip: &str, at: Time) -> StoreResult<()> {
        self.interceptor.before("record_login_success")?;
        self.inner.record_login_success(email_key, ip, at).await
    }

    async fn prune_login_failures(&self, runs_before: Time, pairs_before: Time) -> StoreResult<u64> {
        self.interceptor.before("prune_login_failures")?;
        self.inner.prune_login_failures(runs_before, pairs_before).await
    }

    async fn append_invalidation(&self, payload: &str, at: Time) -> StoreResult<i64> {
        self.interceptor.before("append_invalidation")?;
        self.inner.append_invalidation(payload, at).await
    }

    async fn last_invalidation(&self) -> StoreResult<i64> {
        self.interceptor.before("last_invalidation")?;
        self.inner.last_invalidation().await
    }

    async fn invalidations_after(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<(i64, String)>> {
        self.interceptor.before("invalidations_after")?;
        self.inner.invalidations_after(after_seq, limit).await
    }

    async fn prune_invalidations(&self, before: Time) -> StoreResult<u64> {
        self.interceptor.before("prune_invalidations")?;
        self.inner.prune_invalidations(before).await
    }

    async fn audit_chain(&self, account_id: &str, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.interceptor.before("audit_chain")?;
        self.inner.audit_chain(account_id, after_seq, limit).await
    }
}
