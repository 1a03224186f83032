-- Schema 14: accounts for service mode. Every image has an owner (NULL: the library's own,
-- indexed from its folders, which its admins hold) and is private unless shared with the
-- instance. API keys and sessions are stored as SHA-256 digests: a leaked catalog holds no
-- usable credential.

ALTER TABLE images ADD COLUMN owner_id INTEGER REFERENCES users(id);
ALTER TABLE images ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
CREATE INDEX images_owner ON images(owner_id);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    last_used_at REAL,
    revoked_at   REAL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
