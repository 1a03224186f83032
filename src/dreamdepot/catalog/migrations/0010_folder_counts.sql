-- Schema 10: how many files each folder holds directly, kept by triggers, so the folder
-- tree (GET /api/folders, the sidebar) never counts a library per request (issue #18).
-- A folder is (root, dir) with dir the file's rel_path up to and including its last '/'
-- ('' for the root itself); files of offline roots still count (the tree marks the root).

CREATE TABLE folder_counts (
    root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    dir     TEXT NOT NULL,
    files   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (root_id, dir)
) WITHOUT ROWID;

INSERT INTO folder_counts(root_id, dir, files)
    SELECT root_id, rtrim(rel_path, replace(rel_path, '/', '')), count(*)
    FROM files WHERE state IN ('present', 'offline')
    GROUP BY root_id, rtrim(rel_path, replace(rel_path, '/', ''));

CREATE TRIGGER files_folder_ai AFTER INSERT ON files
WHEN new.state IN ('present', 'offline') BEGIN
    INSERT INTO folder_counts(root_id, dir, files)
        VALUES (new.root_id, rtrim(new.rel_path, replace(new.rel_path, '/', '')), 1)
        ON CONFLICT(root_id, dir) DO UPDATE SET files = files + 1;
END;

CREATE TRIGGER files_folder_ad AFTER DELETE ON files
WHEN old.state IN ('present', 'offline') BEGIN
    UPDATE folder_counts SET files = files - 1
        WHERE root_id = old.root_id AND dir = rtrim(old.rel_path, replace(old.rel_path, '/', ''));
END;

CREATE TRIGGER files_folder_au AFTER UPDATE OF state, rel_path, root_id ON files BEGIN
    UPDATE folder_counts SET files = files - 1
        WHERE old.state IN ('present', 'offline') AND root_id = old.root_id
          AND dir = rtrim(old.rel_path, replace(old.rel_path, '/', ''));
    INSERT INTO folder_counts(root_id, dir, files)
        SELECT new.root_id, rtrim(new.rel_path, replace(new.rel_path, '/', '')), 1
        WHERE new.state IN ('present', 'offline')
        ON CONFLICT(root_id, dir) DO UPDATE SET files = files + 1;
END;
