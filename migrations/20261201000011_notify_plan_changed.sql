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
