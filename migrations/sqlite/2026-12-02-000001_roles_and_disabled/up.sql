-- A disabled account cannot log in or refresh; its tokens are revoked when it is disabled.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- The roles of each user, put into every access token it is issued.
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);

-- "Users with role X": the primary key serves "roles of user Y" only.
CREATE INDEX user_roles_role_idx ON user_roles (role, user_id);
