-- Schema 3: each tag's image count, kept by triggers, so whole-library tag lists are instant.

ALTER TABLE tags ADD COLUMN image_count INTEGER NOT NULL DEFAULT 0;
UPDATE tags SET image_count = (SELECT count(*) FROM image_tags WHERE tag_id = tags.id);
CREATE INDEX tags_image_count ON tags(image_count);

CREATE TRIGGER image_tags_count_ai AFTER INSERT ON image_tags BEGIN
    UPDATE tags SET image_count = image_count + 1 WHERE id = new.tag_id;
END;
CREATE TRIGGER image_tags_count_ad AFTER DELETE ON image_tags BEGIN
    UPDATE tags SET image_count = image_count - 1 WHERE id = old.tag_id;
END;
