-- Changes made by another process (the admin CLI) that make a running server's cached
-- decisions stale. A lone SQLite server polls this table; PostgreSQL nodes hear the same
-- events through LISTEN/NOTIFY, so here the table only keeps both backends alike.
CREATE TABLE invalidations (
    seq         BIGSERIAL PRIMARY KEY,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX invalidations_created_at ON invalidations (created_at);
