-- Automatic backup policies, one per cluster (gone with the cluster).

CREATE TABLE backup_policies (
    cluster_id           TEXT PRIMARY KEY REFERENCES clusters (id) ON DELETE CASCADE,
    project_id           TEXT NOT NULL,
    enabled              INTEGER NOT NULL,
    -- Days of the week, "1,3,5" (1 = Monday).
    frequency            TEXT NOT NULL,
    -- UTC window "HH:mm-HH:mm".
    window_text          TEXT NOT NULL,
    retention_days       INTEGER NOT NULL,
    -- JSON: [{regionId, retentionDays}].
    cross_region_copies  TEXT NOT NULL,
    -- When the policy was last enabled: slots closed before it are not "missed".
    enabled_at           TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    CONSTRAINT backup_policies_retention_check CHECK (retention_days BETWEEN 1 AND 30)
);
