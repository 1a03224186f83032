-- Schema 10 (SQLite's 19): each user's own rating and favourite of an image they see but do
-- not own. See the SQLite migration's notes.

CREATE TABLE user_marks (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    image_id   BIGINT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    rating     INTEGER,
    favorite   INTEGER NOT NULL DEFAULT 0,
    changed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, image_id)
);
CREATE INDEX user_marks_image ON user_marks(image_id);
