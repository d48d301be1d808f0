-- An engineer's hand on the brake: a paused plan's backfills hold between batches (a pause
-- survives a restart: a later apply holds too) until someone resumes it.

ALTER TABLE plans ADD COLUMN paused_by TEXT;
ALTER TABLE plans ADD COLUMN paused_at TEXT;
