-- Schema 8: identity confirmed by whole-file hashes, one model identity, jobs with owners.

-- The whole file's BLAKE2b-256 as of the file's (size, mtime_ns): two files of one image must
-- agree on it, or they are split into two images (ingest/pipeline.py hash_pending).
ALTER TABLE files ADD COLUMN full_hash TEXT;

-- images.model becomes the normalised checkpoint name (folder and extension stripped), so
-- "sd_xl_base_1.0" (A1111) and "checkpoints/sd_xl_base_1.0.safetensors" (ComfyUI) are one
-- model in stats, filters and model: queries; model_raw keeps what the file said.
ALTER TABLE images ADD COLUMN model_raw TEXT;
UPDATE images SET model_raw = model WHERE model IS NOT NULL;
UPDATE images SET model = replace(replace(model, '\', '/'),
    rtrim(replace(model, '\', '/'), replace(replace(model, '\', '/'), '/', '')), '')
    WHERE model IS NOT NULL AND (model LIKE '%/%' OR model LIKE '%\%');
UPDATE images SET model = CASE
    WHEN lower(model) LIKE '%.safetensors' THEN substr(model, 1, length(model) - 12)
    WHEN lower(model) LIKE '%.ckpt' OR lower(model) LIKE '%.gguf' THEN substr(model, 1, length(model) - 5)
    WHEN lower(model) LIKE '%.pt' THEN substr(model, 1, length(model) - 3)
    WHEN lower(model) LIKE '%.pth' OR lower(model) LIKE '%.bin' OR lower(model) LIKE '%.sft'
        THEN substr(model, 1, length(model) - 4)
    ELSE model END
    WHERE model IS NOT NULL;
UPDATE images SET model = trim(model) WHERE model IS NOT NULL;
UPDATE images SET model = NULL WHERE model = '';

-- Jobs: who runs one (host:pid:process start) and when it last said so; a job whose owner is
-- gone is queued again, never one whose owner is alive. Results are keyed by job and index.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN heartbeat_at REAL;
ALTER TABLE images ADD COLUMN job_index INTEGER;
-- How many images the back end returned, recorded before any is written: recovery can tell a
-- complete set of result files from a partial one.
ALTER TABLE jobs ADD COLUMN result_count INTEGER;
CREATE UNIQUE INDEX images_job_result ON images(job_id, job_index) WHERE job_index IS NOT NULL;
