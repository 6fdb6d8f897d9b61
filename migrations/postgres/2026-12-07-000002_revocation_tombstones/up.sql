-- Revocations that outlive their users row: a deleted user's tokens must stay refused
-- by the services that poll the revocation feed until they have expired. user_id has no
-- foreign key, since the user is gone; session_id NULL means every session of the user
-- (a per-session entry names one). not_before as users.tokens_valid_after: unix seconds
-- with a fraction. Rows older than the longest access-token lifetime are deleted.
CREATE TABLE revocations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id TEXT,
    not_before double precision NOT NULL
);

CREATE INDEX revocations_not_before_idx ON revocations (not_before);
