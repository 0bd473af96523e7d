-- Bulk CSV imports of contacts into a campaign (`dialerd import`, and
-- POST /campaign/campaigns/{id}/imports). A file loads in chunks; each
-- chunk's contacts, its counts here and its refused rows commit together,
-- so the counts always say what was committed, never half a chunk.
CREATE TABLE imports (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    campaign_id     uuid NOT NULL,
    -- Where the rows came from: `api`, or the file the command line read.
    source          text NOT NULL,
    all_or_nothing  boolean NOT NULL,
    -- CSV column -> contact field, as applied (defaults and overrides).
    mapping         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'completed', 'failed')),
    -- Why a failed import stopped.
    failure         text,
    -- Data rows read (committed chunks, or validated in an all-or-nothing
    -- import's first pass), and of them contacts created, updated, refused.
    rows_read       bigint NOT NULL DEFAULT 0,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    refused         bigint NOT NULL DEFAULT 0,
    -- The importing process renews this while it works; a running import
    -- past it was interrupted (the process died) and reads as failed.
    alive_until     timestamptz NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    FOREIGN KEY (organization_id, campaign_id)
        REFERENCES campaigns (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX imports_by_campaign ON imports (campaign_id, started_at DESC);

-- The error report: one row per refused CSV row (its first fault).
CREATE TABLE import_errors (
    import_id   uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    -- Line of the file (the header is line 1).
    line        bigint NOT NULL,
    -- The CSV column at fault, when one is.
    column_name text,
    reason      text NOT NULL,
    PRIMARY KEY (import_id, line)
);

-- Lines of each daemon, for the dashboard's lines page.
ALTER TABLE dialer_instances ADD COLUMN lines integer NOT NULL DEFAULT 0;
