DROP TABLE mfa_challenges;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
ALTER TABLE sessions DROP COLUMN amr;
ALTER TABLE users DROP COLUMN session_amr;
ALTER TABLE users DROP COLUMN mfa_enabled;
