-- Schema 13: who asked for a job and where it ran. Users are the accounts of service mode
-- (an embedded library has none); a job carries the user who submitted it and a priority
-- that round-robins between users (see generate/scheduling.py); `worker` names the process
-- that ran it (kept after it finishes, unlike `owner`, the process holding it now).
-- Workers register themselves with what they can run.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL
);

ALTER TABLE jobs ADD COLUMN user_id INTEGER REFERENCES users(id);
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN worker TEXT;
CREATE INDEX jobs_queued ON jobs(priority DESC, id) WHERE status = 'queued';

CREATE TABLE workers (
    name       TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    backend    TEXT NOT NULL,
    models     TEXT NOT NULL,
    device     TEXT,
    vram_bytes INTEGER,
    queues     TEXT NOT NULL,
    started_at REAL NOT NULL,
    seen_at    REAL NOT NULL,
    job_id     INTEGER
);
