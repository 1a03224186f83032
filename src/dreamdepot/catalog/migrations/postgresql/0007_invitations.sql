-- Schema 7 (SQLite's 16): invitations by one-time link. See the SQLite migration's notes.

CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at    DOUBLE PRECISION,
    used_by    BIGINT REFERENCES users(id) ON DELETE SET NULL
);
