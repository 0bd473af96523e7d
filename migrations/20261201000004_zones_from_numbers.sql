-- Time zones from phone numbers: the candidate zones of a contact's numbers
-- (libphonenumber's prefix map, `domain::number_zones::stored`), space-
-- separated, the first number's first; NULL when the map knows none.
ALTER TABLE contacts ADD COLUMN number_zones text;

-- What a contact's calling window is gated by: its stated zone, or `~` and
-- its numbers' zones, or '' for neither (the configuration's default
-- zone). The campaign actors open gates per key, under the
-- configuration's `timezone_inference`; the claim matches it.
ALTER TABLE contacts ADD COLUMN zone_key text NOT NULL
    GENERATED ALWAYS AS (coalesce(timezone, '~' || number_zones, '')) STORED;

DROP INDEX contacts_pending_zones;
-- Zone keys in use by a campaign's waiting contacts, for its window gates.
CREATE INDEX contacts_pending_zones ON contacts (campaign_id, zone_key) WHERE status = 'pending';

-- An upsert that rewrites a contact's numbers may give it a new key.
DROP TRIGGER contacts_notify_plan_on_update ON contacts;
CREATE TRIGGER contacts_notify_plan_on_update
    AFTER UPDATE OF timezone, number_zones, scheduled_at ON contacts
    FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.campaign_id IS NOT NULL)
    EXECUTE FUNCTION notify_plan_changed();
