-- Schema 11: when the user last changed an image's own data (rating, favourite, user tags),
-- so importing XMP sidecars written by other tools never overwrites a newer change here.

ALTER TABLE images ADD COLUMN user_changed_at REAL;

CREATE TRIGGER images_user_change_au AFTER UPDATE OF rating, favorite ON images
WHEN old.rating IS NOT new.rating OR old.favorite IS NOT new.favorite BEGIN
    UPDATE images SET user_changed_at = (julianday('now') - 2440587.5) * 86400.0 WHERE id = new.id;
END;
CREATE TRIGGER image_tags_user_change_ai AFTER INSERT ON image_tags
WHEN new.source = 'user' BEGIN
    UPDATE images SET user_changed_at = (julianday('now') - 2440587.5) * 86400.0 WHERE id = new.image_id;
END;
CREATE TRIGGER image_tags_user_change_ad AFTER DELETE ON image_tags
WHEN old.source = 'user' BEGIN
    UPDATE images SET user_changed_at = (julianday('now') - 2440587.5) * 86400.0 WHERE id = old.image_id;
END;
CREATE TRIGGER image_tags_user_change_au AFTER UPDATE OF source ON image_tags
WHEN new.source = 'user' AND old.source IS NOT 'user' BEGIN
    UPDATE images SET user_changed_at = (julianday('now') - 2440587.5) * 86400.0 WHERE id = new.image_id;
END;
