-- Schema 9: automatic tags in namespaces that do not collide with subjects (issue #19), and
-- what a tagger could not do on an image.

-- "no face found" vs "not applicable: looks like an illustration"; shown in the detail view.
ALTER TABLE tagger_runs ADD COLUMN note TEXT;

-- The colour tagger's orientation tags ("portrait", "landscape", "square") become
-- orientation:*, so the sidebar's "landscape" is scenery again. Only its automatic rows
-- move; a user's own "portrait" or "landscape" tag is never touched. Rows are inserted and
-- deleted (not updated) so the tag-count triggers stay right; rejections follow the rename.
INSERT OR IGNORE INTO tags(name, kind, created_at)
    SELECT DISTINCT 'orientation:' || lower(t.name), 'auto', strftime('%s', 'now')
    FROM tags t JOIN image_tags it ON it.tag_id = t.id
    WHERE lower(t.name) IN ('portrait', 'landscape', 'square')
      AND it.source = 'auto' AND it.tagger = 'colour';
INSERT OR IGNORE INTO image_tags(tag_id, image_id, source, confidence, created_at, tagger)
    SELECT n.id, it.image_id, 'auto', it.confidence, it.created_at, 'colour'
    FROM image_tags it JOIN tags o ON o.id = it.tag_id
    JOIN tags n ON n.name = 'orientation:' || lower(o.name)
    WHERE lower(o.name) IN ('portrait', 'landscape', 'square')
      AND it.source = 'auto' AND it.tagger = 'colour';
INSERT OR IGNORE INTO rejected_tags(image_id, tag_id, at)
    SELECT r.image_id, n.id, r.at FROM rejected_tags r JOIN tags o ON o.id = r.tag_id
    JOIN tags n ON n.name = 'orientation:' || lower(o.name)
    WHERE lower(o.name) IN ('portrait', 'landscape', 'square');
DELETE FROM image_tags
    WHERE source = 'auto' AND tagger = 'colour'
      AND tag_id IN (SELECT id FROM tags WHERE lower(name) IN ('portrait', 'landscape', 'square'));
DELETE FROM tags
    WHERE lower(name) IN ('portrait', 'landscape', 'square') AND kind = 'auto'
      AND NOT EXISTS (SELECT 1 FROM image_tags WHERE tag_id = tags.id)
      AND NOT EXISTS (SELECT 1 FROM rejected_tags WHERE tag_id = tags.id);
