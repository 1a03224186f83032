-- Schema 18: albums have owners and may be shared (as images); dream cache lookups record
-- who asked (statistics per user); a user may keep their shared images out of other users'
-- dream cache answers.

ALTER TABLE albums ADD COLUMN owner_id INTEGER REFERENCES users(id);
ALTER TABLE albums ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cache_events ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX cache_events_user ON cache_events(user_id) WHERE user_id IS NOT NULL;
ALTER TABLE users ADD COLUMN cache_opt_out INTEGER NOT NULL DEFAULT 0;

-- the first admin already took the library's images; its albums go with them
UPDATE albums SET owner_id = (SELECT min(id) FROM users WHERE role = 'admin')
WHERE owner_id IS NULL;
