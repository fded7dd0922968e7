-- Changes made by another process (the admin CLI) that make a running server's cached
-- decisions stale. A lone SQLite server polls this table; PostgreSQL nodes hear the same
-- events through LISTEN/NOTIFY. AUTOINCREMENT: sequence numbers are never reused, so a
-- poller that remembers the last one it applied never skips or repeats an entry.
CREATE TABLE invalidations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX invalidations_created_at ON invalidations (created_at);
