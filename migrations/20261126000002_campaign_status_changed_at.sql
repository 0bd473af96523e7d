-- When each campaign's status last changed, whoever changed it (API or any
-- SQL client), so the engine can measure how soon it noticed the flip.
ALTER TABLE campaigns ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();

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
