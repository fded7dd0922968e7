//! Management authority: `user` < `administrator` < `owner`, and the rules of who may grant,
//! change or remove whom (docs/api.md §4 Accounts, members, data roles).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authority {
    User,
    Administrator,
    Owner,
}

impl Authority {
    pub fn as_str(self) -> &'static str {
        match self {
            Authority::User => "user",
            Authority::Administrator => "administrator",
            Authority::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Authority::User),
            "administrator" => Some(Authority::Administrator),
            "owner" => Some(Authority::Owner),
            _ => None,
        }
    }

    pub fn is_admin(self) -> bool {
        self >= Authority::Administrator
    }
}

/// Why a membership change is refused; each maps to a contract error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRuleViolation {
    /// The actor lacks the authority for the action (403 `insufficient_authority`).
    InsufficientAuthority,
    /// The change would leave the account without an owner (409 `last_owner`).
    LastOwner,
}

/// May `actor` give someone `granted` authority (add or promote)? Never more than one has.
pub fn may_grant(actor: Authority, granted: Authority) -> Result<(), MemberRuleViolation> {
    if actor.is_admin() && granted <= actor { Ok(()) } else { Err(MemberRuleViolation::InsufficientAuthority) }
}

/// May `actor` change a member from `current` to `new`? Administrators cannot touch owners;
/// nobody grants above their own authority; the last owner cannot be demoted.
pub fn may_change(
    actor: Authority,
    current: Authority,
    new: Authority,
    owners_in_account: usize,
) -> Result<(), MemberRuleViolation> {
    if !actor.is_admin() || (current == Authority::Owner && actor != Authority::Owner) {
        return Err(MemberRuleViolation::InsufficientAuthority);
    }
    may_grant(actor, new)?;
    if current == Authority::Owner && new != Authority::Owner && owners_in_account <= 1 {
        return Err(MemberRuleViolation::LastOwner);
    }
    Ok(())
}

/// May `actor` remove a member whose authority is `target`? Anyone may leave; administrators
/// remove users and administrators, owners anyone; the last owner can never go.
pub fn may_remove(
    actor: Authority,
    target: Authority,
    is_self: bool,
    owners_in_account: usize,
) -> Result<(), MemberRuleViolation> {
    let allowed = is_self || (actor.is_admin() && (target != Authority::Owner || actor == Authority::Owner));
    if !allowed {
        return Err(MemberRuleViolation::InsufficientAuthority);
    }
    if target == Authority::Owner && owners_in_account <= 1 {
        return Err(MemberRuleViolation::LastOwner);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Authority::*;
    use super::*;

    #[test]
    fn authorities_are_ordered() {
        assert!(User < Administrator && Administrator < Owner);
    }

    #[test]
    fn administrator_cannot_grant_owner() {
        assert_eq!(may_grant(Administrator, Owner), Err(MemberRuleViolation::InsufficientAuthority));
        assert_eq!(may_grant(Administrator, Administrator), Ok(()));
        assert_eq!(may_grant(User, User), Err(MemberRuleViolation::InsufficientAuthority));
    }

    #[test]
    fn administrator_cannot_demote_owner() {
        assert_eq!(may_change(Administrator, Owner, User, 2), Err(MemberRuleViolation::InsufficientAuthority));
    }

    #[test]
    fn last_owner_cannot_be_demoted_or_leave() {
        assert_eq!(may_change(Owner, Owner, Administrator, 1), Err(MemberRuleViolation::LastOwner));
        assert_eq!(may_change(Owner, Owner, Administrator, 2), Ok(()));
        assert_eq!(may_remove(Owner, Owner, true, 1), Err(MemberRuleViolation::LastOwner));
    }

    #[test]
    fn members_may_leave_but_not_remove_others() {
        assert_eq!(may_remove(User, User, true, 1), Ok(()));
        assert_eq!(may_remove(User, User, false, 1), Err(MemberRuleViolation::InsufficientAuthority));
        assert_eq!(may_remove(Administrator, Owner, false, 2), Err(MemberRuleViolation::InsufficientAuthority));
        assert_eq!(may_remove(Owner, Owner, false, 2), Ok(()));
    }
}
