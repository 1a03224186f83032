-- Schema 19: each user's own rating and favourite of an image they see but do not own (a
-- colleague's shared image). The image row keeps its owner's marks, as before; these rows
-- are private to the user who made them and go with the user or the image.

CREATE TABLE user_marks (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    rating     INTEGER,
    favorite   INTEGER NOT NULL DEFAULT 0,
    changed_at REAL NOT NULL,
    PRIMARY KEY (user_id, image_id)
) WITHOUT ROWID;
CREATE INDEX user_marks_image ON user_marks(image_id);
