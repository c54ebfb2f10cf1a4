-- Users, roles and grants recorded by a CLUSTER backup (names only; JSON), and a job's result
-- (sealed with the service's key: a restore's new passwords live there until first read).
ALTER TABLE backups ADD COLUMN rbac TEXT;
ALTER TABLE jobs ADD COLUMN result TEXT;
