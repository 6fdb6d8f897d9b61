-- A second factor (TOTP with recovery codes), and the authentication methods a session
-- was started with, which its refreshed tokens keep (`amr`, RFC 8176).
ALTER TABLE users ADD COLUMN mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE;
-- The users row's session (SESSIONS_PER_USER=1): its methods, comma-joined; NULL: a password.
ALTER TABLE users ADD COLUMN session_amr TEXT;
ALTER TABLE sessions ADD COLUMN amr TEXT;

-- One TOTP factor per user. The secrets are AES-256-GCM ciphertexts (base64 of nonce and
-- ciphertext) under a key kept beside the signing keys, never here: a dump of this table
-- alone passes no second factor.
CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The confirmed secret; NULL until the first confirmation.
    secret TEXT,
    -- A secret set up and not yet confirmed; a new setup replaces it.
    pending_secret TEXT,
    -- The last time step accepted: a code of it or an earlier step is refused (replay).
    last_step BIGINT,
    created_at_ms BIGINT NOT NULL
);

-- SHA-256 of each recovery code left; a code used is deleted (single use).
CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- The second step of a login: SHA-256 of its mfa_token, single-use, with its wrong codes.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at_ms BIGINT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at_ms);
