-- Counters kept per statement for inserts: an ingest writes a batch of images (and of files)
-- in one INSERT, and a trigger that updates the prompt's (or folder's) counter once per row
-- made every row a second write. Statement-level triggers over the inserted rows (a
-- transition table) add each prompt's and folder's count once per statement. Deletes and
-- updates keep their row triggers (transition tables cannot watch chosen columns).

DROP TRIGGER images_prompt ON images;
CREATE TRIGGER images_prompt AFTER DELETE OR UPDATE OF prompt_id ON images
    FOR EACH ROW EXECUTE FUNCTION dd_images_prompt();

CREATE FUNCTION dd_images_prompt_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE prompts p SET image_count = p.image_count + a.n,
        first_seen = least(coalesce(p.first_seen, a.lo), a.lo),
        last_seen = greatest(coalesce(p.last_seen, a.hi), a.hi)
    FROM (SELECT prompt_id, count(*) AS n, min(created_at) AS lo, max(created_at) AS hi
          FROM added WHERE prompt_id IS NOT NULL GROUP BY prompt_id) a
    WHERE p.id = a.prompt_id;
    RETURN NULL;
END $$;
CREATE TRIGGER images_prompt_added AFTER INSERT ON images REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION dd_images_prompt_added();

DROP TRIGGER files_folder ON files;
CREATE TRIGGER files_folder AFTER DELETE OR UPDATE OF state, rel_path, root_id ON files
    FOR EACH ROW EXECUTE FUNCTION dd_files_folder();

CREATE FUNCTION dd_files_folder_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO folder_counts(root_id, dir, files)
        SELECT root_id, dd_dir(rel_path), count(*) FROM added
        WHERE state IN ('present', 'offline') GROUP BY 1, 2
        ON CONFLICT (root_id, dir) DO UPDATE SET files = folder_counts.files + excluded.files;
    RETURN NULL;
END $$;
CREATE TRIGGER files_folder_added AFTER INSERT ON files REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION dd_files_folder_added();
