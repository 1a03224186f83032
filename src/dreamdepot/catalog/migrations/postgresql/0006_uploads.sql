-- Schema 6 (SQLite's 15): uploaded files by the SHA-256 of their bytes. See the SQLite
-- migration's notes.

CREATE TABLE uploads (
    sha256     TEXT PRIMARY KEY,
    image_id   BIGINT REFERENCES images(id) ON DELETE SET NULL,
    user_id    BIGINT REFERENCES users(id) ON DELETE SET NULL,
    bytes      BIGINT NOT NULL,
    name       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX uploads_user ON uploads(user_id);
