CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE CHECK (username = lower(username)),
    email TEXT,
    password_hash TEXT NOT NULL,
    -- SHA-256 (lower-case hex) of the one live refresh token; NULL when logged out.
    refresh_token_hash TEXT UNIQUE,
    refresh_token_expires_at TIMESTAMP,
    -- The token it replaced and when, for the retry grace window and reuse detection.
    previous_refresh_token_hash TEXT,
    refresh_token_rotated_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE INDEX users_previous_refresh_token_hash_idx ON users (previous_refresh_token_hash);
