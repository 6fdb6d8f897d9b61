DROP INDEX users_tokens_valid_after_idx;
ALTER TABLE users DROP COLUMN tokens_valid_after;
