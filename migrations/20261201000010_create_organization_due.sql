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

-- Contacts already waiting when this migration runs.
INSERT INTO organization_due (organization_id, next_due, ad_hoc_due, concurrency_limit)
SELECT c.organization_id, min(c.next_attempt_at),
       coalesce(min(c.next_attempt_at) FILTER (WHERE c.campaign_id IS NULL), 'infinity'),
       min(o.concurrency_limit)
  FROM contacts c JOIN organizations o ON o.id = c.organization_id
 WHERE c.status = 'pending'
 GROUP BY c.organization_id;
