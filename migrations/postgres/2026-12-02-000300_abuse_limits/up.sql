-- Abuse limits shared by every instance on this database (see src/auth/rate_limit).
-- Times are unix milliseconds of tollgate's clock, never the database's. UNLOGGED: these
-- rows change on every attempt and matter for minutes, so they skip the write-ahead log;
-- a crash or a failover to a replica forgets them, which only resets the counts.

-- Attempts per client IP in the current one-minute window, which ends at expires_at_ms.
CREATE UNLOGGED TABLE ip_attempts (
    ip TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

-- Failed logins per username key (lower-cased, at most 64 characters; unknown names too):
-- the recent failures, how many lockouts so far, the current lock, and when the row is
-- forgotten (long after its last failure counts and its lock ends).
CREATE UNLOGGED TABLE login_failures (
    username_key TEXT PRIMARY KEY,
    failures_ms BIGINT[] NOT NULL,
    lockouts INTEGER NOT NULL,
    locked_until_ms BIGINT,
    expires_at_ms BIGINT NOT NULL
);

-- Expired rows are found for deletion without a scan.
CREATE INDEX ip_attempts_expires_at_idx ON ip_attempts (expires_at_ms);
CREATE INDEX login_failures_expires_at_idx ON login_failures (expires_at_ms);
