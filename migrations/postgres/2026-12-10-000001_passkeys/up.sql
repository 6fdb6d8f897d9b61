-- Passkeys (WebAuthn): each user's credentials, and the ceremonies in progress.

-- A registered passkey. `credential` is webauthn-rs's record of it as JSON (the public
-- key, the sign counter, the backup flags); the counter and the flags are also kept as
-- columns, so that a use can move them on by a conditional write and an operator can read
-- them. A public key is no secret: nothing here signs in anyone.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The credential id the authenticator gave it, base64url without padding.
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backup_state BOOLEAN NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

-- A registration or a sign-in begun: webauthn-rs's state of it (its challenge) as JSON,
-- single-use, in the database so that any instance can finish it.
CREATE TABLE passkey_flows (
    id TEXT PRIMARY KEY,
    -- 'register' (of user_id) or 'login' (of nobody yet).
    kind TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX passkey_flows_expires_idx ON passkey_flows (expires_at_ms);
