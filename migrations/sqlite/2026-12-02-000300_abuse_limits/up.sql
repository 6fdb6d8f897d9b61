-- Abuse limits shared by every instance on a PostgreSQL database (see src/auth/rate_limit).
-- SQLite keeps them in memory: these tables exist, unused, so that one schema serves both.
-- Times are unix milliseconds of tollgate's clock, never the database's.

-- Attempts per client IP in the current one-minute window, which ends at expires_at_ms.
CREATE TABLE ip_attempts (
    ip TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

-- Failed logins per username key (lower-cased, at most 64 characters; unknown names too):
-- the recent failures, how many lockouts so far, the current lock, and when the row is
-- forgotten (long after its last failure counts and its lock ends).
CREATE TABLE login_failures (
    username_key TEXT PRIMARY KEY,
    failures_ms TEXT NOT NULL, -- an array of BIGINT on PostgreSQL
    lockouts INTEGER NOT NULL,
    locked_until_ms BIGINT,
    expires_at_ms BIGINT NOT NULL
);

-- Expired rows are found for deletion without a scan.
CREATE INDEX ip_attempts_expires_at_idx ON ip_attempts (expires_at_ms);
CREATE INDEX login_failures_expires_at_idx ON login_failures (expires_at_ms);
