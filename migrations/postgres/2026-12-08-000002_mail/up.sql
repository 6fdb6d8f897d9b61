-- Mail: whether an address was verified, the one live token per account and purpose that
-- a mail carries (SHA-256 only; the token itself is derived from `nonce` with a secret
-- kept beside the signing keys, so the database alone cannot make one), the cooldown per
-- address of password-reset requests, and the outbox that every mail (and later every
-- webhook) goes out through. Times are unix milliseconds of tollgate's clock.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
-- Password reset finds accounts by address (addresses are not unique, as in Django).
CREATE INDEX users_email_idx ON users (email);

CREATE TABLE mail_tokens (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    -- NULL once used: the row stays for the cooldown.
    token_hash TEXT UNIQUE,
    nonce TEXT NOT NULL,
    -- The address an email change goes to, or the address the mail went to.
    email TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

-- Password-reset requests per address (SHA-256 of the lower-cased address), known or not.
CREATE TABLE mail_cooldowns (
    address_hash TEXT PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
CREATE INDEX mail_cooldowns_until_idx ON mail_cooldowns (until_ms);

CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    -- JSON; never a token (see mail_tokens).
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    -- A sender working on the row holds it until then (N instances on PostgreSQL).
    claimed_until_ms BIGINT
);
CREATE INDEX outbox_next_attempt_idx ON outbox (next_attempt_at_ms);
