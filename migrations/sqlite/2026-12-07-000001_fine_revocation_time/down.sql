-- Rounded up: a revocation still refuses every token issued before it.
DROP INDEX users_tokens_valid_after_idx;
ALTER TABLE users ADD COLUMN tokens_valid_after_whole BIGINT;
UPDATE users SET tokens_valid_after_whole =
    CAST(tokens_valid_after AS INTEGER) + (tokens_valid_after > CAST(tokens_valid_after AS INTEGER));
ALTER TABLE users DROP COLUMN tokens_valid_after;
ALTER TABLE users RENAME COLUMN tokens_valid_after_whole TO tokens_valid_after;
CREATE INDEX users_tokens_valid_after_idx ON users (tokens_valid_after);
