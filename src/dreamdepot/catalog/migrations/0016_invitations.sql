-- Schema 16: invitations by one-time link. The token is stored as its SHA-256; it makes one
-- account with the role the admin chose, once, before it expires.

CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at    REAL,
    used_by    INTEGER REFERENCES users(id) ON DELETE SET NULL
);
