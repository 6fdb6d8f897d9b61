DROP INDEX revocations_user_id_idx;
DROP TABLE sessions;
ALTER TABLE users DROP COLUMN session_ip;
ALTER TABLE users DROP COLUMN session_user_agent;
ALTER TABLE users DROP COLUMN session_created_at;
ALTER TABLE users DROP COLUMN session_id;
