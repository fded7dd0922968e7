//! `impl Store for SqlStore`: a table of contents. Each method hands over to the module that
//! owns its tables, so this file stays a list.

use async_trait::async_trait;
use keygate_core::Authority;

use super::{SqlStore, accounts, audit, invalidations, keys, login, members, usage, usage_counts, users};
use crate::error::StoreResult;
use crate::model::*;
use crate::store::Store;
use crate::usage::*;

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.reader()).await?;
        Ok(())
    }

    // ---- users and sessions ----

    async fn register(&self, user: User, account: Account, audit: Vec<NewAudit>) -> StoreResult<()> {
        users::register(self, user, account, audit).await
    }
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        users::user_by_email(self, email).await
    }
    async fn user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        users::user_by_id(self, user_id).await
    }
    async fn update_user_name(&self, user_id: &str, name: &str, audit: Vec<NewAudit>) -> StoreResult<User> {
        users::update_user_name(self, user_id, name, audit).await
    }
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        new_session: Session,
        audit: Vec<NewAudit>,
    ) -> StoreResult<()> {
        users::change_password(self, user_id, password_hash, new_session, audit).await
    }
    async fn user_memberships(&self, user_id: &str) -> StoreResult<Vec<UserMembership>> {
        users::user_memberships(self, user_id).await
    }
    async fn create_session(&self, session: Session, audit: Vec<NewAudit>) -> StoreResult<()> {
        users::create_session(self, session, audit).await
    }
    async fn session_by_digest(&self, digest: &str) -> StoreResult<Option<SessionAuth>> {
        users::session_by_digest(self, digest).await
    }
    async fn touch_session(&self, session_id: &str, at: Time) -> StoreResult<()> {
        users::touch_session(self, session_id, at).await
    }
    async fn revoke_session(&self, session_id: &str, at: Time) -> StoreResult<()> {
        users::revoke_session(self, session_id, at).await
    }

    // ---- accounts ----

    async fn create_account(&self, account: Account, owner_user_id: &str, audit: Vec<NewAudit>) -> StoreResult<()> {
        accounts::create_account(self, account, owner_user_id, audit).await
    }
    async fn account_by_id(&self, account_id: &str) -> StoreResult<Option<Account>> {
        accounts::account_by_id(self, account_id).await
    }
    async fn update_account(
        &self,
        account_id: &str,
        name: Option<&str>,
        url: Option<Option<&str>>,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Account> {
        accounts::update_account(self, account_id, name, url, audit).await
    }
    async fn delete_account(&self, account_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<()> {
        accounts::delete_account(self, account_id, at, audit).await
    }
    async fn set_plan(&self, account_id: &str, plan: &str, audit: Vec<NewAudit>) -> StoreResult<Account> {
        accounts::set_plan(self, account_id, plan, audit).await
    }

    async fn set_account_limits(
        &self,
        account_id: &str,
        plan: Option<&str>,
        overrides: Option<&LimitOverrides>,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Account> {
        accounts::set_limits(self, account_id, plan, overrides, audit).await
    }
    async fn list_accounts(&self, page: &PageRequest) -> StoreResult<Page<Account>> {
        accounts::list_accounts(self, page).await
    }

    // ---- members ----

    async fn membership(&self, account_id: &str, user_id: &str) -> StoreResult<Option<Membership>> {
        members::membership(self, account_id, user_id).await
    }
    async fn list_members(&self, account_id: &str, page: &PageRequest) -> StoreResult<Page<Member>> {
        members::list_members(self, account_id, page).await
    }
    async fn add_member(
        &self,
        account_id: &str,
        user_id: &str,
        authority: Authority,
        at: Time,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Member> {
        members::add_member(self, account_id, user_id, authority, at, audit).await
    }
    async fn change_member_authority(
        &self,
        account_id: &str,
        user_id: &str,
        actor_authority: Authority,
        new: Authority,
        audit: Vec<NewAudit>,
    ) -> StoreResult<Member> {
        members::change_member_authority(self, account_id, user_id, actor_authority, new, audit).await
    }
    async fn remove_member(
        &self,
        account_id: &str,
        user_id: &str,
        actor_authority: Authority,
        is_self: bool,
        audit: Vec<NewAudit>,
    ) -> StoreResult<()> {
        members::remove_member(self, account_id, user_id, actor_authority, is_self, audit).await
    }

    // ---- data roles ----

    async fn create_role(&self, role: Role, audit: Vec<NewAudit>) -> StoreResult<()> {
        accounts::create_role(self, role, audit).await
    }
    async fn role(&self, account_id: &str, role_id: &str) -> StoreResult<Option<Role>> {
        accounts::role(self, account_id, role_id).await
    }
    async fn list_roles(&self, account_id: &str, page: &PageRequest) -> StoreResult<Page<Role>> {
        accounts::list_roles(self, account_id, page).await
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
        accounts::update_role(self, account_id, role_id, name, permissions, at, audit).await
    }
    async fn delete_role(&self, account_id: &str, role_id: &str, audit: Vec<NewAudit>) -> StoreResult<()> {
        accounts::delete_role(self, account_id, role_id, audit).await
    }

    // ---- API keys ----

    async fn create_key(&self, key: NewKey, max_live_keys: Option<u32>, audit: Vec<NewAudit>) -> StoreResult<ApiKey> {
        keys::create_key(self, key, max_live_keys, audit).await
    }
    async fn key_by_handle(&self, account_id: &str, handle: &str) -> StoreResult<Option<ApiKey>> {
        keys::key_by_handle(self, account_id, handle).await
    }
    async fn list_keys(
        &self,
        account_id: &str,
        filter: &KeyFilter,
        now: Time,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        keys::list_keys(self, account_id, filter, now, page).await
    }
    async fn update_key(
        &self,
        account_id: &str,
        key_id: &str,
        patch: &KeyPatch,
        audit: Vec<NewAudit>,
    ) -> StoreResult<ApiKey> {
        keys::update_key(self, account_id, key_id, patch, audit).await
    }
    async fn revoke_key(&self, account_id: &str, key_id: &str, at: Time, audit: Vec<NewAudit>) -> StoreResult<ApiKey> {
        keys::revoke_key(self, account_id, key_id, at, audit).await
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
        keys::roll_key(self, account_id, key_id, successor, old_expires_at, at, audit).await
    }
    async fn key_auth_by_digest(&self, digest: &str) -> StoreResult<Option<KeyAuth>> {
        usage::key_auth_by_digest(self, digest).await
    }
    async fn consume_usage(&self, key_id: &str, cost: i64, now: Time) -> StoreResult<Option<i64>> {
        usage::consume_usage(self, key_id, cost, now).await
    }
    async fn record_usage(&self, deltas: &[UsageDelta]) -> StoreResult<()> {
        usage_counts::record_usage(self, deltas).await
    }
    async fn key_usage(
        &self,
        account_id: &str,
        key_id: &str,
        granularity: Granularity,
        from: Time,
        to: Time,
    ) -> StoreResult<Vec<UsageBucket>> {
        usage_counts::key_usage(self, account_id, key_id, granularity, from, to).await
    }
    async fn account_usage_by_day(&self, account_id: &str, from: Time, to: Time) -> StoreResult<Vec<UsageBucket>> {
        usage_counts::account_usage_by_day(self, account_id, from, to).await
    }
    async fn account_usage_by_key(&self, account_id: &str, from: Time, to: Time) -> StoreResult<Vec<KeyUsageTotal>> {
        usage_counts::account_usage_by_key(self, account_id, from, to).await
    }
    async fn prune_usage_hours(&self, before: Time, limit: u32) -> StoreResult<u64> {
        usage_counts::prune_usage_hours(self, before, limit).await
    }

    // ---- audit ----

    async fn login_failures(&self, email_key: &str, ip: &str) -> StoreResult<LoginFailures> {
        login::failures(self, email_key, ip).await
    }
    async fn record_login_failure(&self, email_key: &str, ip: &str, at: Time) -> StoreResult<()> {
        login::record_failure(self, email_key, ip, at).await
    }
    async fn record_login_success(&self, email_key: &str, ip: &str, at: Time) -> StoreResult<()> {
        login::record_success(self, email_key, ip, at).await
    }
    async fn prune_login_failures(&self, runs_before: Time, pairs_before: Time) -> StoreResult<u64> {
        login::prune(self, runs_before, pairs_before).await
    }

    async fn append_invalidation(&self, payload: &str, at: Time) -> StoreResult<i64> {
        invalidations::append(self, payload, at).await
    }
    async fn last_invalidation(&self) -> StoreResult<i64> {
        invalidations::last(self).await
    }
    async fn invalidations_after(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<(i64, String)>> {
        invalidations::after(self, after_seq, limit).await
    }
    async fn prune_invalidations(&self, before: Time) -> StoreResult<u64> {
        invalidations::prune(self, before).await
    }

    async fn append_audit(&self, audit: Vec<NewAudit>) -> StoreResult<()> {
        audit::append_audit(self, audit).await
    }
    async fn list_audit(
        &self,
        account_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        audit::list_audit(self, account_id, filter, page).await
    }
    async fn audit_chain(&self, account_id: &str, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        audit::audit_chain(self, account_id, after_seq, limit).await
    }
}
