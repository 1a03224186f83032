-- Schema 7: generation jobs, persisted so they survive restarts.

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('txt2img', 'img2img', 'upscale')),
    backend          TEXT NOT NULL,
    request          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress         REAL NOT NULL DEFAULT 0,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    image_ids        TEXT,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    backend_seconds  REAL
);
CREATE INDEX jobs_status ON jobs(status, id);
