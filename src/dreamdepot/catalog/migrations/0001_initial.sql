-- Dream Depot catalog, schema 1: roots, files, images, prompts (+FTS5), tags, errors.
-- Readable from the sqlite3 shell: see docs/catalog.md for every table and column.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

CREATE TABLE roots (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    watch        INTEGER NOT NULL DEFAULT 1,
    online       INTEGER NOT NULL DEFAULT 1,
    added_at     REAL NOT NULL,
    last_scan_at REAL
);

CREATE TABLE prompts (
    id          INTEGER PRIMARY KEY,
    text        TEXT NOT NULL UNIQUE,
    image_count INTEGER NOT NULL DEFAULT 0,
    first_seen  REAL,
    last_seen   REAL
);

CREATE VIRTUAL TABLE prompts_fts USING fts5(
    text, content='prompts', content_rowid='id',
    tokenize="unicode61 remove_diacritics 2 tokenchars '_'", prefix='2 3'
);
CREATE TRIGGER prompts_ai AFTER INSERT ON prompts BEGIN
    INSERT INTO prompts_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER prompts_ad AFTER DELETE ON prompts BEGIN
    INSERT INTO prompts_fts(prompts_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TABLE images (
    id                 INTEGER PRIMARY KEY,
    content_hash       TEXT NOT NULL UNIQUE,
    full_hash          TEXT,
    bytes              INTEGER NOT NULL,
    format             TEXT NOT NULL,
    width              INTEGER,
    height             INTEGER,
    created_at         REAL NOT NULL,
    indexed_at         REAL NOT NULL,
    generator          TEXT,
    generator_version  TEXT,
    model              TEXT,
    model_hash         TEXT,
    vae                TEXT,
    sampler            TEXT,
    scheduler          TEXT,
    steps              INTEGER,
    cfg_scale          REAL,
    seed               INTEGER,
    denoise            REAL,
    clip_skip          INTEGER,
    prompt_id          INTEGER REFERENCES prompts(id),
    negative_prompt_id INTEGER REFERENCES prompts(id),
    loras              TEXT,
    params             TEXT,
    raw_metadata       TEXT,
    metadata_source    TEXT,
    metadata_error     TEXT,
    parent_id          INTEGER REFERENCES images(id) ON DELETE SET NULL,
    job_id             INTEGER,
    rating             INTEGER CHECK (rating BETWEEN 0 AND 5),
    favorite           INTEGER NOT NULL DEFAULT 0,
    placeholder        TEXT,
    thumb_key          TEXT,
    phash              INTEGER
);
CREATE INDEX images_created ON images(created_at, id);
CREATE INDEX images_prompt ON images(prompt_id);
CREATE INDEX images_negative_prompt ON images(negative_prompt_id);
CREATE INDEX images_model ON images(model);
CREATE INDEX images_seed ON images(seed);
CREATE INDEX images_generator ON images(generator);

CREATE TRIGGER images_prompt_ai AFTER INSERT ON images WHEN new.prompt_id IS NOT NULL BEGIN
    UPDATE prompts SET image_count = image_count + 1,
        first_seen = min(coalesce(first_seen, new.created_at), new.created_at),
        last_seen = max(coalesce(last_seen, new.created_at), new.created_at)
    WHERE id = new.prompt_id;
END;
CREATE TRIGGER images_prompt_ad AFTER DELETE ON images WHEN old.prompt_id IS NOT NULL BEGIN
    UPDATE prompts SET image_count = image_count - 1 WHERE id = old.prompt_id;
END;
CREATE TRIGGER images_prompt_au AFTER UPDATE OF prompt_id ON images
WHEN old.prompt_id IS NOT new.prompt_id BEGIN
    UPDATE prompts SET image_count = image_count - 1 WHERE id = old.prompt_id;
    UPDATE prompts SET image_count = image_count + 1,
        first_seen = min(coalesce(first_seen, new.created_at), new.created_at),
        last_seen = max(coalesce(last_seen, new.created_at), new.created_at)
    WHERE id = new.prompt_id;
END;

-- rel_path is TEXT, or a BLOB holding the raw bytes of a name that is not valid UTF-8.
CREATE TABLE files (
    id         INTEGER PRIMARY KEY,
    root_id    INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    rel_path   TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    state      TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'missing', 'offline')),
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    UNIQUE (root_id, rel_path)
);
CREATE INDEX files_image ON files(image_id);

CREATE TABLE tags (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind       TEXT NOT NULL DEFAULT 'user',
    created_at REAL NOT NULL
);

CREATE TABLE image_tags (
    tag_id     INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    source     TEXT NOT NULL DEFAULT 'user',
    confidence REAL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tag_id, image_id)
) WITHOUT ROWID;
CREATE INDEX image_tags_image ON image_tags(image_id, tag_id);

CREATE TABLE scan_errors (
    id       INTEGER PRIMARY KEY,
    root_id  INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    rel_path TEXT NOT NULL,
    size     INTEGER,
    mtime_ns INTEGER,
    reason   TEXT NOT NULL,
    at       REAL NOT NULL,
    UNIQUE (root_id, rel_path)
);
