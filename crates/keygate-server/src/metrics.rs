//! Prometheus metrics at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabel {
    pub(crate) code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub(crate) status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub(crate) http_responses: Family<StatusLabel, Counter>,
    /// Decisions of the authenticator (verify codes: VALID, REVOKED, …).
    pub(crate) decisions: Family<CodeLabel, Counter>,
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) shared_limit_failures: Counter,
    pub(crate) invalidations_received: Counter,
    /// Cache misses refused without a storage read: their sender had spent its allowance of
    /// unknown credentials (`limits::address`). A rising rate is someone guessing.
    pub(crate) unknown_credentials_throttled: Counter,
    pub(crate) usage_flush_seconds: Histogram,
    pub(crate) upstream_seconds: Histogram,
    /// Handles on `decisions` for every known code, created once: the hot path increments
    /// one without allocating a label or taking the family's lock (BENCHMARKS.md).
    decision_counters: Vec<(&'static str, Counter)>,
    /// Handles on `http_responses` by status (100–999), each made on its status's first
    /// answer: every answer counts itself without the family's lock and SipHash lookup.
    response_counters: Box<[OnceLock<Counter>]>,
}

/// `http::StatusCode` spans 100–999.
const STATUS_RANGE: std::ops::RangeInclusive<u16> = 100..=999;

/// Every code the authenticator decides (verify's `code` values).
const DECISION_CODES: [&str; 11] = [
    "VALID",
    "NOT_FOUND",
    "REVOKED",
    "EXPIRED",
    "INACTIVE",
    "PLAN_REQUIRED",
    "IP_NOT_ALLOWED",
    "USER_CREDENTIAL_REQUIRED",
    "INSUFFICIENT_SCOPE",
    "RATE_LIMITED",
    "USAGE_EXCEEDED",
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let http_responses = Family::<StatusLabel, Counter>::default();
        let decisions = Family::<CodeLabel, Counter>::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let shared_limit_failures = Counter::default();
        let invalidations_received = Counter::default();
        let unknown_credentials_throttled = Counter::default();
        let usage_flush_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let upstream_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register("http_responses", "HTTP responses by status", http_responses.clone());
        registry.register("auth_decisions", "Authenticator decisions by code", decisions.clone());
        registry.register("key_cache_hits", "Key and session lookups served from the cache", cache_hits.clone());
        registry.register("key_cache_misses", "Key and session lookups that went to storage", cache_misses.clone());
        registry.register(
            "shared_rate_limit_failures",
            "Shared (Redis) rate-limit checks that could not be decided",
            shared_limit_failures.clone(),
        );
        registry.register(
            "invalidations_received",
            "Cache invalidations received from other nodes",
            invalidations_received.clone(),
        );
        registry.register(
            "unknown_credentials_throttled",
            "Credential lookups refused unread: the sender had sent too many unknown credentials",
            unknown_credentials_throttled.clone(),
        );
        registry.register("usage_flush_seconds", "Time to flush usage counters", usage_flush_seconds.clone());
        registry.register("upstream_seconds", "Gateway upstream latency", upstream_seconds.clone());
        let decision_counters = DECISION_CODES
            .iter()
            .map(|code| (*code, decisions.get_or_create(&CodeLabel { code: (*code).to_owned() }).clone()))
            .collect();
        Metrics {
            registry,
            http_responses,
            decisions,
            cache_hits,
            cache_misses,
            shared_limit_failures,
            invalidations_received,
            unknown_credentials_throttled,
            usage_flush_seconds,
            upstream_seconds,
            decision_counters,
            response_counters: STATUS_RANGE.map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one answer with `status`.
    pub(crate) fn response(&self, status: http::StatusCode) {
        let code = status.as_u16();
        let slot = usize::from(code.saturating_sub(*STATUS_RANGE.start()));
        match self.response_counters.get(slot) {
            Some(counter) => {
                counter.get_or_init(|| self.http_responses.get_or_create(&StatusLabel { status: code }).clone()).inc()
            }
            None => self.http_responses.get_or_create(&StatusLabel { status: code }).inc(),
        };
    }

    pub(crate) fn decision(&self, code: &str) {
        match self.decision_counters.iter().find(|(c, _)| *c == code) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.decisions.get_or_create(&CodeLabel { code: code.to_owned() }).inc();
            }
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;
    use http::StatusCode;

    #[test]
    fn answers_are_counted_by_status() {
        let m = Metrics::new();
        m.response(StatusCode::OK);
        m.response(StatusCode::OK);
        m.response(StatusCode::NOT_FOUND);
        let text = m.render();
        assert!(text.contains("keygate_http_responses_total{status=\"200\"} 2"), "{text}");
        assert!(text.contains("keygate_http_responses_total{status=\"404\"} 1"), "{text}");
        assert!(!text.contains("status=\"500\""), "only statuses that were answered appear: {text}");
    }
}
