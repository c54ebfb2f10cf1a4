-- The job center and the backup list page newest first: an index in that order lets a page
-- be read without sorting every row.
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX backups_created_idx ON backups (created_at DESC, id DESC);
