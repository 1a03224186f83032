-- Schema 12: videos and animations. Duration (seconds), frame count and frame rate are
-- NULL for still images; preview_key names the short muted MP4 the grid plays on hover.

ALTER TABLE images ADD COLUMN duration REAL;
ALTER TABLE images ADD COLUMN frame_count INTEGER;
ALTER TABLE images ADD COLUMN fps REAL;
ALTER TABLE images ADD COLUMN preview_key TEXT;

-- GIF and WebP files indexed before this schema may be animations: the next scan reads
-- them again (a changed mtime makes a file new to the diff; its image keeps its user data).
UPDATE files SET mtime_ns = -1
WHERE image_id IN (SELECT id FROM images WHERE format IN ('gif', 'webp'));

-- the media stage runs again for animations, to make their previews
CREATE INDEX images_animated ON images(duration) WHERE duration IS NOT NULL;
