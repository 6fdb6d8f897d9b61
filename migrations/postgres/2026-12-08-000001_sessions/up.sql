-- Sessions (SESSIONS_PER_USER). With 1, the one session lives on the users row as before,
-- which now also names it (session_id, the access tokens' sid) and says where it started.
-- With more, each session is a row of `sessions`, with the same refresh-chain columns as
-- the users row has. A session live at this migration gets an id of its own.
ALTER TABLE users ADD COLUMN session_id TEXT;
ALTER TABLE users ADD COLUMN session_created_at TIMESTAMP;
ALTER TABLE users ADD COLUMN session_user_agent TEXT;
ALTER TABLE users ADD COLUMN session_ip TEXT;
UPDATE users SET session_id = gen_random_uuid()::text,
    session_created_at = updated_at
    WHERE refresh_token_hash IS NOT NULL;

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_token_hash TEXT NOT NULL UNIQUE,
    refresh_token_expires_at TIMESTAMP NOT NULL,
    previous_refresh_token_hash TEXT,
    refresh_token_rotated_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    user_agent TEXT,
    ip TEXT
);

CREATE INDEX sessions_previous_refresh_token_hash_idx ON sessions (previous_refresh_token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id, last_used_at);
-- The ended sessions of a user come with its account (the user cache).
CREATE INDEX revocations_user_id_idx ON revocations (user_id);
