-- tokens_valid_after stays in unix seconds (the contract names it), now with a fraction:
-- revocation cuts at the millisecond, so that a token issued just after a revocation in
-- the same second is not refused, and iat no longer has to run ahead of the clock to say
-- so. Whole seconds stored so far keep their meaning. SQLite cannot change a column's
-- type: a REAL column takes its place, under the same name.
DROP INDEX users_tokens_valid_after_idx;
ALTER TABLE users ADD COLUMN tokens_valid_after_real REAL;
UPDATE users SET tokens_valid_after_real = tokens_valid_after;
ALTER TABLE users DROP COLUMN tokens_valid_after;
ALTER TABLE users RENAME COLUMN tokens_valid_after_real TO tokens_valid_after;
CREATE INDEX users_tokens_valid_after_idx ON users (tokens_valid_after);
