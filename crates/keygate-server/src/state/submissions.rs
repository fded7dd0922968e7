//! One-time tokens for forms whose sending twice would do a thing twice: the new-key form
//! carries one, so a browser's re-post (reload, back and resend, a double click) cannot mint a
//! second key. The first sending claims the token; a later one finds it claimed.
//!
//! Per node and in memory: a re-post normally reaches the node that served the first one
//! within seconds; behind a round-robin balancer it may reach another, which then mints
//! (the secret of the first is already on the screen it replaced, so nothing is lost).
//!
//! The dashboard's, but held in the shared state (`Inner::submissions`), so it lives beside
//! the state rather than in `dashboard/`: the state never imports a front end.

use std::time::Duration;

use moka::sync::Cache;

/// How long a sent form's token is remembered.
const REMEMBERED_FOR: Duration = Duration::from_secs(3600);
/// Tokens kept at most; the oldest go first.
const CAPACITY: u64 = 100_000;

pub(crate) struct Submissions(Cache<String, ()>);

impl Default for Submissions {
    fn default() -> Self {
        Submissions(Cache::builder().max_capacity(CAPACITY).time_to_live(REMEMBERED_FOR).build())
    }
}

impl Submissions {
    /// A token for a form about to be shown.
    pub(crate) fn issue() -> String {
        keygate_core::base62::random(22)
    }

    /// `true` the first time `token` is sent, `false` on every later sending.
    pub(crate) fn claim(&self, token: &str) -> bool {
        self.0.entry(token.to_owned()).or_insert(()).is_fresh()
    }

    /// The form's action failed (bad input): sending it again is not a repeat.
    pub(crate) fn release(&self, token: &str) {
        self.0.invalidate(token);
    }
}

#[cfg(test)]
mod tests {
    use super::Submissions;

    #[test]
    fn a_token_is_claimed_once_until_released() {
        let s = Submissions::default();
        let t = Submissions::issue();
        assert_eq!(t.len(), 22);
        assert!(s.claim(&t));
        assert!(!s.claim(&t));
        s.release(&t);
        assert!(s.claim(&t));
        assert!(s.claim(&Submissions::issue()), "tokens are independent");
    }
}
