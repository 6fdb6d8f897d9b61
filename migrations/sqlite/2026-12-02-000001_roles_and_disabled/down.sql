DROP INDEX user_roles_role_idx;
DROP TABLE user_roles;
ALTER TABLE users DROP COLUMN disabled;
