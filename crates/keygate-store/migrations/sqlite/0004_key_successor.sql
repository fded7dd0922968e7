-- A rolled key remembers its successor, so that it is rolled once: a second roll of the
-- same key (a reloaded page, a retried request, two people at once) answers 409 `key_rolled`
-- instead of minting another live key. The roll sets it with a conditional UPDATE
-- (`WHERE rolled_to IS NULL`) inside its transaction, so of two concurrent rolls exactly one
-- wins. Keys rolled before this migration have none and could be rolled once more.
-- No foreign key: keys are never deleted (accounts are soft-deleted), and the successor is
-- inserted after the old key is claimed, in the same transaction.
ALTER TABLE api_keys ADD COLUMN rolled_to TEXT;
