-- An idle daemon sleeps until the earliest `organization_due` bound (at
-- most `dialer.idle_recheck_ms`) instead of probing every claim interval;
-- a statement that lowers a bound wakes it at once: NOTIFY `dialerd_due`
-- (`db::notify::DUE`). A statement whose contacts are covered by a bound
-- already low enough changes no row and sends nothing: the sleeper wakes
-- by that bound anyway.
CREATE OR REPLACE FUNCTION note_organization_due() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    lowered bigint;
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
    GET DIAGNOSTICS lowered = ROW_COUNT;
    IF lowered > 0 THEN
        PERFORM pg_notify('dialerd_due', '');
    END IF;
    RETURN NULL;
END
$$;
