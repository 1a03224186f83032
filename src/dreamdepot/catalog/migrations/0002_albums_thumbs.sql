-- Schema 2: albums, and indexes for the browsing queries (rating, favourites, look-alikes).

CREATE TABLE albums (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL
);

CREATE TABLE album_images (
    album_id INTEGER NOT NULL REFERENCES albums(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    added_at REAL NOT NULL,
    PRIMARY KEY (album_id, image_id)
) WITHOUT ROWID;
CREATE INDEX album_images_image ON album_images(image_id);

-- prompt words with how many prompts use each, for autocomplete
CREATE VIRTUAL TABLE prompts_vocab USING fts5vocab(prompts_fts, row);

CREATE INDEX images_phash ON images(phash) WHERE phash IS NOT NULL;
CREATE INDEX images_rating ON images(rating) WHERE rating IS NOT NULL;
CREATE INDEX images_favorite ON images(favorite) WHERE favorite = 1;
ALTER TABLE images ADD COLUMN media_error TEXT;
CREATE INDEX images_thumb_pending ON images(id) WHERE thumb_key IS NULL AND media_error IS NULL;
