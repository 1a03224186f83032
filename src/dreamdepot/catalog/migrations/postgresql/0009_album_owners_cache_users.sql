-- Schema 9 (SQLite's 18): album owners and sharing, who asked the dream cache, and users'
-- opt-out of the shared cache. See the SQLite migration's notes.

ALTER TABLE albums ADD COLUMN owner_id BIGINT REFERENCES users(id);
ALTER TABLE albums ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cache_events ADD COLUMN user_id BIGINT REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX cache_events_user ON cache_events(user_id) WHERE user_id IS NOT NULL;
ALTER TABLE users ADD COLUMN cache_opt_out INTEGER NOT NULL DEFAULT 0;

UPDATE albums SET owner_id = (SELECT min(id) FROM users WHERE role = 'admin')
WHERE owner_id IS NULL;
