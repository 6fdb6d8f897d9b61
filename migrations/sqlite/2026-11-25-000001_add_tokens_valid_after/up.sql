-- Access tokens whose iat is before this (unix seconds) are revoked: set by logout,
-- password change and refresh-token reuse detection, published by /auth/revocations.
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT;
CREATE INDEX users_tokens_valid_after_idx ON users (tokens_valid_after);
