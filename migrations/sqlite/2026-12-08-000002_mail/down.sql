DROP TABLE outbox;
DROP TABLE mail_cooldowns;
DROP TABLE mail_tokens;
DROP INDEX users_email_idx;
ALTER TABLE users DROP COLUMN email_verified;
