-- A daemon with nothing due sleeps until the earliest `organization_due`
-- bound (at most `dialer.idle_recheck_ms`). A bound inserted or lowered, by
-- any statement, NOTIFYs `dialerd_due` (`db::notify::DUE`), which wakes it
-- at once. A bound raised (by a claim that found nothing due) sends nothing.
CREATE FUNCTION notify_due() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dialerd_due', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER organization_due_notify_on_insert
    AFTER INSERT ON organization_due
    FOR EACH ROW EXECUTE FUNCTION notify_due();
CREATE TRIGGER organization_due_notify_on_lower
    AFTER UPDATE OF next_due, ad_hoc_due ON organization_due
    FOR EACH ROW WHEN (NEW.next_due < OLD.next_due OR NEW.ad_hoc_due < OLD.ad_hoc_due)
    EXECUTE FUNCTION notify_due();
