-- Schema 6: automatic tagging. Auto tags live in image_tags with source 'auto' and the
-- tagger's name; a user's rejection is remembered so re-runs never bring a tag back; each
-- tagger's last run per image (and its version) decides what still needs tagging.

ALTER TABLE image_tags ADD COLUMN tagger TEXT;

CREATE TABLE rejected_tags (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag_id   INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    at       REAL NOT NULL,
    PRIMARY KEY (image_id, tag_id)
) WITHOUT ROWID;

CREATE TABLE tagger_runs (
    tagger   TEXT NOT NULL,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    version  TEXT NOT NULL,
    at       REAL NOT NULL,
    error    TEXT,
    PRIMARY KEY (tagger, image_id)
) WITHOUT ROWID;
