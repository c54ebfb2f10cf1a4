-- Backups. No foreign key to clusters: manual backups outlive their cluster, so the cluster's
-- name and region are copied here when the backup is made.

CREATE TABLE backups (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    cluster_id       TEXT NOT NULL,
    cluster_name     TEXT NOT NULL,
    region_id        TEXT NOT NULL,
    name             TEXT NOT NULL,
    -- N of `backup<N>_...` and of the default name, counting per cluster from 1.
    seq              INTEGER NOT NULL,
    backup_type      TEXT NOT NULL,
    creation_method  TEXT NOT NULL,
    status           TEXT NOT NULL,
    -- JSON: what was asked for ([{dbName, collectionNames}]; empty for CLUSTER).
    selection        TEXT NOT NULL,
    -- JSON: per collection, once the backup is AVAILABLE ([{dbName, collectionName, ...}]).
    collections      TEXT,
    -- JSON: regions to copy the backup to once AVAILABLE ([{regionId, retentionDays?}]).
    copy_regions     TEXT NOT NULL DEFAULT '[]',
    size             INTEGER NOT NULL,
    job_id           TEXT,
    reason           TEXT,
    expire_at        TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT,
    -- Set when the objects are gone; the row stays (hidden) for the usage report.
    deleted_at       TEXT,
    CONSTRAINT backups_cluster_seq_key UNIQUE (cluster_id, seq),
    CONSTRAINT backups_cluster_name_key UNIQUE (cluster_id, name),
    CONSTRAINT backups_type_check CHECK (backup_type IN ('CLUSTER', 'COLLECTION')),
    CONSTRAINT backups_method_check CHECK (creation_method IN ('MANUAL', 'AUTO')),
    CONSTRAINT backups_status_check CHECK (status IN
        ('CREATING', 'AVAILABLE', 'FAILED', 'CANCELED', 'DELETING', 'DELETED'))
);

-- The task rule "one manual backup at a time per cluster", enforced by the database so two
-- replicas answering at once cannot both accept one.
CREATE UNIQUE INDEX backups_one_manual_creating ON backups (cluster_id)
    WHERE creation_method = 'MANUAL' AND status = 'CREATING';
CREATE INDEX backups_project_created_idx ON backups (project_id, created_at DESC);
CREATE INDEX backups_cluster_created_idx ON backups (cluster_id, created_at DESC);

-- Copies of a backup in other regions (crossRegionCopies): same keys, another region's storage.
CREATE TABLE backup_copies (
    backup_id    TEXT NOT NULL REFERENCES backups (id),
    region_id    TEXT NOT NULL,
    status       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    job_id       TEXT,
    reason       TEXT,
    expire_at    TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT backup_copies_pkey PRIMARY KEY (backup_id, region_id),
    CONSTRAINT backup_copies_status_check CHECK (status IN ('CREATING', 'AVAILABLE', 'FAILED', 'DELETING'))
);
