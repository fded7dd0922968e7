-- Usage by outcome (docs/api.md, "Usage"): every request made with a known key counts, the
-- refused ones too, under the verify code it got (VALID, RATE_LIMITED, REVOKED, …). Unknown
-- keys have no key to count against and are not counted here.
--
-- Nodes flush what they gathered in memory as increments
-- (`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`), never as read-modify-write, so
-- any number of nodes can flush the same key and hour at once without losing counts.
--
-- One row per key, bucket and outcome that occurred (not a column per outcome): a key that
-- only ever succeeds costs one row a day, and a new verify code needs no migration.
-- `start` is the bucket's first instant, Unix milliseconds (UTC), like every time here.
-- The account id is on every row, so an account's totals read its own rows and never join
-- its keys. Same tables and keys as on SQLite (see its 0005), so both behave alike.

-- Hours, for the last 8 days only: a background task deletes older rows every hour, in
-- bounded batches (docs/operations.md, "Usage retention").
CREATE TABLE usage_hourly (
    key_id      TEXT COLLATE "C" NOT NULL,
    start       BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    account_id  TEXT COLLATE "C" NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (key_id, start, outcome)
);
-- What the pruner deletes by: the oldest hours first.
CREATE INDEX usage_hourly_start ON usage_hourly (start);

-- Days, kept (never pruned by keygate: at least the 366 days the API can ask for).
-- The key order (account, key, outcome, day) serves both reads: one key's days are one
-- range, and an account's totals per key (`GET /v1/usage?group_by=key`) are one ordered
-- scan of the account's range.
CREATE TABLE usage_daily (
    account_id  TEXT COLLATE "C" NOT NULL,
    key_id      TEXT COLLATE "C" NOT NULL,
    outcome     TEXT    NOT NULL,
    start       BIGINT  NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (account_id, key_id, outcome, start)
);

-- The account's days, summed over its keys in the same flush transaction: the account's
-- series per day reads at most 366 × outcomes rows instead of every key's every day.
CREATE TABLE usage_account_daily (
    account_id  TEXT COLLATE "C" NOT NULL,
    start       BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (account_id, start, outcome)
);

-- The daily counts kept so far move into the new shape rather than being read from two
-- places: they counted granted requests only, which is the outcome VALID.
INSERT INTO usage_daily (account_id, key_id, outcome, start, n)
SELECT k.account_id, d.key_id, 'VALID', (d.day::date - DATE '1970-01-01')::BIGINT * 86400000, d.requests
FROM key_usage_daily d JOIN api_keys k ON k.id = d.key_id;
INSERT INTO usage_account_daily (account_id, start, outcome, n)
SELECT account_id, start, outcome, SUM(n)::BIGINT FROM usage_daily GROUP BY account_id, start, outcome;
DROP TABLE key_usage_daily;

-- `request_count` now counts every request made with the key, refused ones too;
-- `success_count` the granted ones. Until now `request_count` counted granted requests only,
-- so that is what each key's `success_count` starts from.
ALTER TABLE api_keys ADD COLUMN success_count BIGINT NOT NULL DEFAULT 0;
UPDATE api_keys SET success_count = request_count;
