-- Core objects of dialerd: tenants, their API tokens, configurations,
-- campaigns, contacts and attempts. The database enforces every rule it can.

CREATE TYPE campaign_status AS ENUM ('active', 'paused', 'closed');
CREATE TYPE contact_status AS ENUM ('pending', 'locked', 'in_progress', 'completed', 'exhausted');
CREATE TYPE attempt_outcome AS ENUM (
    'completed', 'no_answer', 'busy', 'voicemail', 'rejected',
    'invalid_number', 'failed', 'interrupted'
);

CREATE TABLE organizations (
    id                uuid PRIMARY KEY,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    concurrency_limit integer NOT NULL DEFAULT 10 CHECK (concurrency_limit BETWEEN 1 AND 10000),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a token is stored; the token itself is shown once.
CREATE TABLE api_tokens (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    token_sha256    bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    scopes          text[] NOT NULL CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY[
                        'campaigns:read', 'campaigns:manage',
                        'concurrency:read', 'concurrency:manage']::text[]),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE configurations (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    schedule        jsonb NOT NULL CHECK (jsonb_typeof(schedule) = 'object'),
    dialing_policy  jsonb NOT NULL CHECK (jsonb_typeof(dialing_policy) = 'object'),
    agent           jsonb NOT NULL CHECK (jsonb_typeof(agent) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id)
);

CREATE TABLE campaigns (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id      text CHECK (length(external_id) BETWEEN 1 AND 200),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    configuration_id uuid NOT NULL,
    status           campaign_status NOT NULL DEFAULT 'active',
    priority         integer NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 999999),
    agent_id         text,
    agent_version    text,
    agent_number     text,
    agent_config     jsonb,
    initial_context  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, external_id),
    UNIQUE (organization_id, id),
    -- A campaign can only use a configuration of its own organization, and
    -- a configuration cannot be deleted while a campaign references it.
    FOREIGN KEY (organization_id, configuration_id)
        REFERENCES configurations (organization_id, id) ON DELETE RESTRICT
);
CREATE INDEX campaigns_by_configuration ON campaigns (configuration_id);

-- Daemon instances that claim contacts; a claim whose owner stopped
-- heartbeating is recovered.
CREATE TABLE dialer_instances (
    id               uuid PRIMARY KEY,
    hostname         text NOT NULL,
    pid              integer NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    heartbeat_at     timestamptz NOT NULL DEFAULT now(),
    -- Renewed by every heartbeat; past it, the instance's claims are recovered.
    lease_expires_at timestamptz NOT NULL
);

-- campaign_id NULL is the ad-hoc "default" campaign of the organization.
CREATE TABLE contacts (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    campaign_id       uuid,
    external_id       text CHECK (length(external_id) BETWEEN 1 AND 200),
    phone_numbers     text[] NOT NULL CHECK (cardinality(phone_numbers) BETWEEN 1 AND 10),
    -- Index (0-based) into phone_numbers of numbers retired by invalid_number.
    retired_numbers   integer[] NOT NULL DEFAULT '{}',
    data              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    timezone          text,
    scheduled_at      timestamptz,
    agent_id          text,
    agent_version     text,
    agent_number      text,
    agent_config      jsonb,
    initial_context   text,
    status            contact_status NOT NULL DEFAULT 'pending',
    attempt_count     integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    -- Index (0-based) of the number the next attempt dials.
    next_number_index integer NOT NULL DEFAULT 0 CHECK (next_number_index >= 0),
    -- Due time: the later of creation, scheduled_at and the retry time.
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_outcome      attempt_outcome,
    -- Effective dialing priority: the campaign's, or 1000000 for ad-hoc.
    priority          integer NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 1000000),
    -- Claim ownership: set while locked or in_progress. The claim lasts as
    -- long as the owner's lease in dialer_instances.
    owner_instance    uuid,
    claimed_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, campaign_id)
        REFERENCES campaigns (organization_id, id) ON DELETE CASCADE,
    CHECK ((status IN ('locked', 'in_progress')) = (owner_instance IS NOT NULL)),
    CHECK ((owner_instance IS NULL) = (claimed_at IS NULL))
);
CREATE UNIQUE INDEX contacts_external_id_in_campaign
    ON contacts (campaign_id, external_id) WHERE campaign_id IS NOT NULL;
CREATE UNIQUE INDEX contacts_external_id_ad_hoc
    ON contacts (organization_id, external_id) WHERE campaign_id IS NULL;
CREATE INDEX contacts_by_campaign ON contacts (campaign_id, status);
-- The claim scans only due pending contacts, in dialing order.
CREATE INDEX contacts_due ON contacts
    (organization_id, priority DESC, (attempt_count > 0), next_attempt_at)
    WHERE status = 'pending';
-- Time zones in use by a campaign's waiting contacts, for its window gates.
CREATE INDEX contacts_pending_zones ON contacts (campaign_id, timezone) WHERE status = 'pending';
-- Active calls per organization and claims per owner, for limits and recovery.
CREATE INDEX contacts_active ON contacts (organization_id, owner_instance)
    WHERE status IN ('locked', 'in_progress');

CREATE TABLE attempts (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    contact_id       uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    campaign_id      uuid,
    attempt_number   integer NOT NULL CHECK (attempt_number >= 1),
    phone_number     text NOT NULL,
    agent_id         text,
    agent_version    text,
    agent_number     text,
    agent_config     jsonb,
    initial_context  text,
    conversation_id  text,
    outcome          attempt_outcome,
    telephony_detail text,
    instance_id      uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    answered_at      timestamptz,
    ended_at         timestamptz,
    UNIQUE (contact_id, attempt_number),
    CHECK ((outcome IS NULL) = (ended_at IS NULL))
);
CREATE INDEX attempts_by_campaign ON attempts (campaign_id, outcome);
-- At most one open attempt per contact: no contact is ever dialed twice at once.
CREATE UNIQUE INDEX attempts_one_open_per_contact ON attempts (contact_id) WHERE outcome IS NULL;

-- Any status change, from dialerd or from psql, wakes the dialer at once.
CREATE FUNCTION notify_campaign_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM pg_notify('dialerd_campaign_status',
            json_build_object('id', NEW.id, 'status', NEW.status)::text);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER campaigns_status_notify
    AFTER INSERT OR UPDATE OF status ON campaigns
    FOR EACH ROW EXECUTE FUNCTION notify_campaign_status();
