-- Schema 4: images by prompt *and date*, so "this word's images, newest first" sorts from the
-- index alone (no table lookups for the rows that do not make the page).

DROP INDEX images_prompt;
CREATE INDEX images_prompt_created ON images(prompt_id, created_at);
