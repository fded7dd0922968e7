-- The login throttle's counters (SPEC §4), in the database every node shares, so that N nodes
-- allow no more guesses than one. Emails are stored as digests, never as typed.

-- A run of consecutive failures: subject 'e:<email digest>' or 'ip:<address>'.
CREATE TABLE login_failures (
    subject  TEXT PRIMARY KEY,
    count    INTEGER NOT NULL,
    last_at  INTEGER NOT NULL
);
CREATE INDEX login_failures_last_at ON login_failures (last_at);

-- Addresses that have signed in to an email: exempt from that email's run.
CREATE TABLE login_known (
    email_key  TEXT NOT NULL,
    ip         TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (email_key, ip)
);
CREATE INDEX login_known_seen_at ON login_known (seen_at);
