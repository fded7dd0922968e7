-- Limits a company can sell (docs/api.md §7 Keys, "Plans and trials").
--
-- A key's named rate limits, a JSON list `[{name, limit, window_seconds, burst?}]`, each on
-- top of its unnamed `rate_limit`. NULL (every key before this migration) is no named limit.
ALTER TABLE api_keys ADD COLUMN rate_limits TEXT;
-- Credits that refill: at each start of the interval (`day` | `month`, UTC) the credits left
-- become `refill_amount` (replaced, not added). `refilled_at` is the start (ms) of the period
-- last refilled; the conditional spend compares it with the current period's start and resets
-- `usage_used` in the same statement, so a refill happens once whichever node sees it first.
ALTER TABLE api_keys ADD COLUMN refill_amount INTEGER;
ALTER TABLE api_keys ADD COLUMN refill_interval TEXT;
ALTER TABLE api_keys ADD COLUMN refilled_at INTEGER;
-- The operator's overrides of the plan's limits for one account, a JSON object
-- `{rate_limits?, quota?, max_keys?}`; NULL is none (the plan's limits apply as they are).
ALTER TABLE accounts ADD COLUMN limit_overrides TEXT;
