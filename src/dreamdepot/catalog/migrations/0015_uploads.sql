-- Schema 15: files people uploaded (POST /api/uploads, dreamdepot push), by the SHA-256 of
-- their bytes: one copy per content, who sent it first, and its size for per-user quotas.

CREATE TABLE uploads (
    sha256     TEXT PRIMARY KEY,
    image_id   INTEGER REFERENCES images(id) ON DELETE SET NULL,
    user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    bytes      INTEGER NOT NULL,
    name       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX uploads_user ON uploads(user_id);
