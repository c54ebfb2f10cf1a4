-- Projects, API keys, custom roles, regions and the cluster registry.
-- Never edit an applied migration: add a new file.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT projects_name_key UNIQUE (name)
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    key_hash       TEXT NOT NULL,
    org_role       TEXT NOT NULL,
    project_roles  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_org_role_check CHECK (org_role IN ('OWNER', 'MEMBER'))
);

-- One row, ever: whoever inserts it created the first admin key (safe with many replicas).
CREATE TABLE bootstrap (
    id          INTEGER PRIMARY KEY,
    api_key_id  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT bootstrap_single_row CHECK (id = 1)
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    privileges  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE regions (
    id                  TEXT PRIMARY KEY,
    cloud_provider      TEXT NOT NULL,
    storage_type        TEXT NOT NULL,
    price_per_gb_month  DOUBLE PRECISION NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE clusters (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    region_id   TEXT NOT NULL,
    plan        TEXT NOT NULL,
    cu_size     BIGINT NOT NULL,
    milvus_uri  TEXT NOT NULL,
    storage     TEXT NOT NULL,
    secrets     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT clusters_project_name_key UNIQUE (project_id, name),
    CONSTRAINT clusters_plan_check CHECK (plan IN ('Dedicated', 'Serverless'))
);

CREATE INDEX clusters_project_idx ON clusters (project_id, created_at);
