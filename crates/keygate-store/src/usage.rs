//! Usage as the rest of the program sees it: the outcomes a request with a known key can have
//! (the verify codes, docs/api.md "Usage"), counters per outcome, what a node flushes and
//! what a read answers. Times are UTC.

use std::fmt;

use crate::model::Time;

/// What became of a request made with a known key: its verify code (or the gateway's
/// `CREDENTIAL_NOT_ACCEPTED`). Unknown keys are not counted (there is no key to count them
/// against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Valid,
    RateLimited,
    QuotaExceeded,
    UsageExceeded,
    InsufficientScope,
    IpNotAllowed,
    Expired,
    Revoked,
    Inactive,
    PlanRequired,
    UserCredentialRequired,
    /// The gateway only: a key of a class the route does not take (not a verify code).
    CredentialNotAccepted,
}

impl Outcome {
    /// How many outcomes there are: the length of [`OutcomeCounts`].
    pub const COUNT: usize = 12;

    /// Every outcome, in the order answers and CSV columns list them.
    pub const ALL: [Outcome; Outcome::COUNT] = [
        Outcome::Valid,
        Outcome::RateLimited,
        Outcome::QuotaExceeded,
        Outcome::UsageExceeded,
        Outcome::InsufficientScope,
        Outcome::IpNotAllowed,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::Inactive,
        Outcome::PlanRequired,
        Outcome::UserCredentialRequired,
        Outcome::CredentialNotAccepted,
    ];

    /// The verify code, as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Valid => "VALID",
            Outcome::RateLimited => "RATE_LIMITED",
            Outcome::QuotaExceeded => "QUOTA_EXCEEDED",
            Outcome::UsageExceeded => "USAGE_EXCEEDED",
            Outcome::InsufficientScope => "INSUFFICIENT_SCOPE",
            Outcome::IpNotAllowed => "IP_NOT_ALLOWED",
            Outcome::Expired => "EXPIRED",
            Outcome::Revoked => "REVOKED",
            Outcome::Inactive => "INACTIVE",
            Outcome::PlanRequired => "PLAN_REQUIRED",
            Outcome::UserCredentialRequired => "USER_CREDENTIAL_REQUIRED",
            Outcome::CredentialNotAccepted => "CREDENTIAL_NOT_ACCEPTED",
        }
    }

    /// The outcome of a verify code; `None` for codes that are not counted (`NOT_FOUND`).
    pub fn from_code(code: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == code)
    }

    /// Its place in [`OutcomeCounts`] (and in [`Outcome::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A count per outcome: a fixed array, so counting a request is one indexed add.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts(pub [i64; Outcome::COUNT]);

impl OutcomeCounts {
    pub fn get(&self, outcome: Outcome) -> i64 {
        self.0[outcome.index()]
    }

    pub fn add(&mut self, outcome: Outcome, n: i64) {
        self.0[outcome.index()] += n;
    }

    pub fn merge(&mut self, other: &OutcomeCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    /// Every request counted, whatever its outcome.
    pub fn total(&self) -> i64 {
        self.0.iter().sum()
    }

    /// The outcomes with a count, in [`Outcome::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (Outcome, i64)> + '_ {
        Outcome::ALL.into_iter().map(|o| (o, self.get(o))).filter(|(_, n)| *n != 0)
    }

    pub fn of(outcome: Outcome, n: i64) -> OutcomeCounts {
        let mut c = OutcomeCounts::default();
        c.add(outcome, n);
        c
    }
}

/// One node's accumulated use of one key in one UTC hour, flushed as increments (never
/// overwrites): `request_count` grows by every outcome, `success_count` by `VALID`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDelta {
    pub key_id: String,
    /// The first instant of the hour the uses fall in.
    pub hour: Time,
    pub outcomes: OutcomeCounts,
    pub last_used_at: Time,
    pub last_used_ip: Option<String>,
}

/// How finely a series is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    /// The bucket length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }
}

/// The counts of one bucket (an hour or a UTC day) starting at `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    pub start: Time,
    pub outcomes: OutcomeCounts,
}

/// One key's totals over a range, for an account's usage grouped by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsageTotal {
    pub key_id: String,
    /// The key's current name (for people reading an export).
    pub name: String,
    pub outcomes: OutcomeCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_slot_and_code() {
        for (i, o) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(o.index(), i);
            assert_eq!(Outcome::from_code(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::from_code("NOT_FOUND"), None);
        let mut c = OutcomeCounts::of(Outcome::Revoked, 2);
        c.merge(&OutcomeCounts::of(Outcome::Valid, 3));
        assert_eq!((c.total(), c.get(Outcome::Valid)), (5, 3));
        assert_eq!(c.nonzero().collect::<Vec<_>>(), vec![(Outcome::Valid, 3), (Outcome::Revoked, 2)]);
    }
}
