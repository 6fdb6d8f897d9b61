-- Rounded up: a revocation still refuses every token issued before it.
ALTER TABLE users ALTER COLUMN tokens_valid_after TYPE BIGINT USING ceil(tokens_valid_after)::bigint;
