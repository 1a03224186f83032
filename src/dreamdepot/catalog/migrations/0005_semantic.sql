-- Schema 5: prompt/image embeddings (tagged by model id) and the dream cache's decisions.

CREATE TABLE embeddings (
    model_id   TEXT NOT NULL,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('prompt', 'image')),
    owner_id   INTEGER NOT NULL,
    dim        INTEGER NOT NULL,
    dtype      TEXT NOT NULL CHECK (dtype IN ('float16', 'float32')),
    vector     BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (model_id, owner_kind, owner_id)
) WITHOUT ROWID;

CREATE TABLE cache_events (
    id                INTEGER PRIMARY KEY,
    at                REAL NOT NULL,
    prompt            TEXT NOT NULL,
    negative_prompt   TEXT,
    decision          TEXT NOT NULL CHECK (decision IN ('hit', 'miss', 'bypass')),
    similarity        REAL,
    matched_prompt_id INTEGER REFERENCES prompts(id) ON DELETE SET NULL,
    image_ids         TEXT,
    reason            TEXT,
    seconds_saved     REAL,
    model_id          TEXT,
    request           TEXT
);
CREATE INDEX cache_events_at ON cache_events(at);

-- where a prompt came from: 'image' (seen in a file) or 'prefill' (a prompt data set)
ALTER TABLE prompts ADD COLUMN origin TEXT NOT NULL DEFAULT 'image';
