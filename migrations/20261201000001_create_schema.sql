-- dialerd's schema: tenants and their API tokens, configurations,
-- campaigns, contacts and attempts, the daemon instances that claim
-- contacts, and the bookkeeping that keeps a claim's cost proportional to
-- the work due. The database enforces every rule it can, so a row written
-- by any SQL client obeys them too.

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
    -- When the status last changed, whoever changed it (API or any SQL
    -- client): the engine measures how soon it noticed the flip.
    status_changed_at timestamptz NOT NULL DEFAULT now(),
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
    -- Why a contact the dialer cannot call whatever the time (its row does
    -- not decode, or none of its numbers is usable) was set aside, ending
    -- `exhausted` with no attempt counted; null for every other contact.
    set_aside_reason  text,
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

-- One row per call placed. Its organization is its contact's (the claim
-- copies it), so it has no key of its own to organizations: deleting an
-- organization deletes its attempts through its contacts. The reference to
-- the contact is kept by the statement-level triggers below, not a foreign
-- key, whose check would run (and be planned) once per attempt written.
CREATE TABLE attempts (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    contact_id       uuid NOT NULL,
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
-- Status callbacks find their attempt by the platform's conversation id.
-- A hash index: the lookup is by equality only, and an entry holds a hash
-- of the id rather than the id; attempts with no conversation have none.
CREATE INDEX attempts_by_conversation ON attempts USING hash (conversation_id)
    WHERE conversation_id IS NOT NULL;

-- Any status change, from dialerd or from psql, wakes the dialer at once,
-- and is stamped with the moment it happened.
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

CREATE FUNCTION stamp_campaign_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.status_changed_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER campaigns_status_stamp
    BEFORE UPDATE OF status ON campaigns
    FOR EACH ROW EXECUTE FUNCTION stamp_campaign_status();

-- The attempts' reference to their contact, checked once per statement:
-- an attempt is written (or moved) only for a contact that exists, and
-- that contact is key-share locked until the writer commits, as a foreign
-- key's check would lock it, so a concurrent delete either waits for the
-- writer or is seen by it.
CREATE FUNCTION attempts_check_contacts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    -- The distinct contacts of the statement's new attempts, each looked
    -- up and key-share locked, in one query.
    SELECT count(*), count(c.id) INTO wanted, found
      FROM (SELECT DISTINCT contact_id FROM new_attempts) n
           LEFT JOIN LATERAL (SELECT c.id FROM contacts c WHERE c.id = n.contact_id FOR KEY SHARE) c
           ON true;
    IF found < wanted THEN
        RAISE EXCEPTION 'an attempt must belong to an existing contact (% of % contacts not found)',
                        wanted - found, wanted
              USING ERRCODE = 'foreign_key_violation', TABLE = 'attempts',
                    CONSTRAINT = 'attempts_contact_id_fkey';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_check_contacts
    AFTER INSERT ON attempts REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION attempts_check_contacts();

-- An attempt moved to another contact (nothing does that) is checked row
-- by row: the trigger fires only for an UPDATE that names contact_id, so
-- closing attempts, which does not, pays nothing for it.
CREATE FUNCTION attempts_check_moved_contact() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM contacts c WHERE c.id = NEW.contact_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'an attempt must belong to an existing contact (% not found)', NEW.contact_id
              USING ERRCODE = 'foreign_key_violation', TABLE = 'attempts',
                    CONSTRAINT = 'attempts_contact_id_fkey';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER attempts_check_moved_contact
    BEFORE UPDATE OF contact_id ON attempts
    FOR EACH ROW WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id)
    EXECUTE FUNCTION attempts_check_moved_contact();

-- Deleting contacts deletes their attempts in the same statement, whether
-- the contacts go one by one or by cascade from their campaign or
-- organization; TRUNCATE of contacts empties attempts.
CREATE FUNCTION contacts_delete_attempts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE attempts;
    ELSE
        DELETE FROM attempts a USING gone_contacts g WHERE a.contact_id = g.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_delete_attempts
    AFTER DELETE ON contacts REFERENCING OLD TABLE AS gone_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_delete_attempts();
CREATE TRIGGER contacts_truncate_attempts
    AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_delete_attempts();

-- A contact's id does not change, so no attempt is left pointing nowhere.
CREATE FUNCTION contacts_keep_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a contact''s id does not change' USING ERRCODE = 'foreign_key_violation';
END
$$;

-- Fires only for an UPDATE that names id (none of the daemon's do).
CREATE TRIGGER contacts_keep_id
    BEFORE UPDATE OF id ON contacts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION contacts_keep_id();

-- The first (priority, retry) group of an organization's waiting contacts,
-- in dialing order after the group (after_priority, after_retry) (from
-- the start when they are NULL), that has a contact due by `due_by`, with
-- its earliest due time; NULLs when there is none.
--
-- The claim asks one group at a time, with its priority and retry pinned:
-- within a group contacts_due is in due order, so the claim's scan stops
-- at the first contact not yet due, and starts at `group_first_due`, past
-- the index entries of contacts claimed since the last vacuum. The first
-- contact of a group in that order is its earliest due, so one index walk
-- per group answers both whether it has work due and from when.
CREATE FUNCTION next_due_group(org uuid, due_by timestamptz,
                               after_priority integer, after_retry boolean,
                               OUT group_priority integer, OUT group_retry boolean,
                               OUT group_first_due timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p integer := after_priority;
    r boolean := after_retry;
BEGIN
    LOOP
        -- This priority's retries after its fresh contacts (nothing before
        -- the first group, p and r NULL)...
        SELECT c.priority, c.attempt_count > 0, c.next_attempt_at
          INTO group_priority, group_retry, group_first_due FROM contacts c
         WHERE c.organization_id = org AND c.status = 'pending' AND c.priority = p
           AND (c.attempt_count > 0) > r
         ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at LIMIT 1;
        IF NOT FOUND THEN
            -- ...else the next lower priority (the highest at first: no
            -- priority is above 1000000).
            SELECT c.priority, c.attempt_count > 0, c.next_attempt_at
              INTO group_priority, group_retry, group_first_due FROM contacts c
             WHERE c.organization_id = org AND c.status = 'pending' AND c.priority < coalesce(p, 1000001)
             ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at LIMIT 1;
        END IF;
        -- No row leaves all three NULL: no group left. Else the group's
        -- earliest due contact says whether it has one due.
        IF group_priority IS NULL OR group_first_due <= due_by THEN
            RETURN;
        END IF;
        p := group_priority;
        r := group_retry;
    END LOOP;
END
$$;

-- Which organizations have waiting contacts, and from when one may be due:
-- the claim visits only organizations whose `next_due` has passed, so its
-- cost follows the organizations with due work, not how many exist.
--
-- `next_due` is a lower bound of the earliest `next_attempt_at` of the
-- organization's pending contacts ('infinity': none). Every statement that
-- makes contacts pending lowers it when it must (a trigger, so rows written
-- by any SQL client count too); the claim raises it again, in a statement
-- of its own, when it finds the organization has nothing due.
--
-- No contact is missed between the two: the trigger share-locks the row of
-- every organization whose bound is already low enough (or inserts or
-- lowers it, which locks it too), and the raise takes the row with
-- FOR UPDATE SKIP LOCKED first, so it skips an organization whose new
-- contacts are not committed yet, and reads the contacts with a snapshot
-- taken after every earlier writer of the row committed.
CREATE TABLE organization_due (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    next_due        timestamptz NOT NULL,
    -- The same bound for its ad-hoc contacts alone, which no calling window
    -- gates: the claim visits an organization none of whose campaigns has
    -- an open window only when this has passed.
    ad_hoc_due      timestamptz NOT NULL DEFAULT 'infinity',
    -- The organization's own, kept equal by a trigger: a claim lists the
    -- organizations with due work from this table alone, with no join.
    concurrency_limit integer NOT NULL
);
CREATE INDEX organization_due_by_time ON organization_due (next_due);

CREATE FUNCTION note_organization_due() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH made_pending AS (
             SELECT organization_id, min(next_attempt_at) AS due,
                    coalesce(min(next_attempt_at) FILTER (WHERE campaign_id IS NULL), 'infinity') AS ad_hoc
               FROM new_rows WHERE status = 'pending' GROUP BY organization_id),
         covered AS (
             SELECT d.organization_id FROM organization_due d
               JOIN made_pending m ON m.organization_id = d.organization_id
                AND d.next_due <= m.due AND d.ad_hoc_due <= m.ad_hoc
              ORDER BY d.organization_id
                FOR SHARE OF d)
    INSERT INTO organization_due (organization_id, next_due, ad_hoc_due, concurrency_limit)
    SELECT m.organization_id, m.due, m.ad_hoc, o.concurrency_limit
      FROM made_pending m JOIN organizations o ON o.id = m.organization_id
     WHERE m.organization_id NOT IN (SELECT organization_id FROM covered)
     ORDER BY m.organization_id
        ON CONFLICT (organization_id)
        DO UPDATE SET next_due = least(organization_due.next_due, excluded.next_due),
                      ad_hoc_due = least(organization_due.ad_hoc_due, excluded.ad_hoc_due);
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_note_due_on_insert
    AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION note_organization_due();
CREATE TRIGGER contacts_note_due_on_update
    AFTER UPDATE ON contacts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION note_organization_due();

-- The earliest due time of an organization's pending contacts, NULL when
-- it has none: the first contact of each (priority, retry) group in
-- contacts_due order, one index probe per group.
CREATE FUNCTION organization_earliest_due(org uuid) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    g record;
    p integer;
    r boolean;
    earliest timestamptz;
BEGIN
    LOOP
        SELECT * INTO g FROM next_due_group(org, 'infinity', p, r);
        EXIT WHEN g.group_priority IS NULL;
        earliest := least(earliest, g.group_first_due);
        p := g.group_priority;
        r := g.group_retry;
    END LOOP;
    RETURN earliest;
END
$$;

-- The earliest due time of an organization's pending ad-hoc contacts (the
-- top priority, 1000000: fresh, then retries), NULL when it has none.
CREATE FUNCTION organization_earliest_ad_hoc_due(org uuid) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(
        (SELECT next_attempt_at FROM contacts
          WHERE organization_id = org AND status = 'pending' AND priority = 1000000 AND attempt_count = 0
          ORDER BY priority DESC, (attempt_count > 0), next_attempt_at LIMIT 1),
        (SELECT next_attempt_at FROM contacts
          WHERE organization_id = org AND status = 'pending' AND priority = 1000000 AND attempt_count > 0
          ORDER BY priority DESC, (attempt_count > 0), next_attempt_at LIMIT 1))
$$;

CREATE FUNCTION copy_concurrency_limit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE organization_due SET concurrency_limit = NEW.concurrency_limit
     WHERE organization_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER organizations_copy_concurrency_limit
    AFTER UPDATE OF concurrency_limit ON organizations
    FOR EACH ROW WHEN (NEW.concurrency_limit IS DISTINCT FROM OLD.concurrency_limit)
    EXECUTE FUNCTION copy_concurrency_limit();

-- What a campaign actor works from may have changed: announce the
-- campaigns, so the dialer re-reads their plans at once instead of at its
-- next batched refresh (`dialer.plan_refresh_seconds`, the guarantee).
-- Contacts added to a campaign, or given a new zone or schedule, may need
-- a gate its actor does not have open yet (a time zone no waiting contact
-- used); an update of a campaign or its configuration changes its plan.
-- The payload is campaign ids, comma-separated, or '*' when they would not
-- fit in a notification; PostgreSQL delivers a payload repeated within one
-- transaction once. Any SQL client's writes count too.
CREATE FUNCTION notify_contacts_added() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    campaigns text;
BEGIN
    SELECT string_agg(DISTINCT campaign_id::text, ',') INTO campaigns
      FROM new_rows WHERE campaign_id IS NOT NULL AND status = 'pending';
    IF campaigns IS NOT NULL THEN
        PERFORM pg_notify('dialerd_plan_changed',
                          CASE WHEN length(campaigns) > 7000 THEN '*' ELSE campaigns END);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_notify_plan_on_insert
    AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_contacts_added();

-- Row by row from here: a trigger on named columns has no transition table.
CREATE FUNCTION notify_plan_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'configurations' THEN
        PERFORM pg_notify('dialerd_plan_changed', k.id::text)
           FROM campaigns k WHERE k.configuration_id = NEW.id AND k.status = 'active';
    WHEN 'campaigns' THEN
        PERFORM pg_notify('dialerd_plan_changed', NEW.id::text);
    ELSE
        PERFORM pg_notify('dialerd_plan_changed', NEW.campaign_id::text);
    END CASE;
    RETURN NULL;
END
$$;

-- An upsert that updates a contact rewrites its zone and schedule; claims
-- and results never name these columns, so they fire nothing here.
CREATE TRIGGER contacts_notify_plan_on_update
    AFTER UPDATE OF timezone, scheduled_at ON contacts
    FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.campaign_id IS NOT NULL)
    EXECUTE FUNCTION notify_plan_changed();
CREATE TRIGGER campaigns_notify_plan_on_update
    AFTER UPDATE OF configuration_id, agent_id, agent_version, agent_number, agent_config,
                    initial_context ON campaigns
    FOR EACH ROW WHEN (NEW.status = 'active')
    EXECUTE FUNCTION notify_plan_changed();
CREATE TRIGGER configurations_notify_plan_on_update
    AFTER UPDATE OF schedule, dialing_policy, agent ON configurations
    FOR EACH ROW EXECUTE FUNCTION notify_plan_changed();
