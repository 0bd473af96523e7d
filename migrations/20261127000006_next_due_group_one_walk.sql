-- next_due_group (migration 5) with one index walk per group instead of
-- two, and the group's earliest due time returned for the claim to start
-- its own scan at.
--
-- The first waiting contact of a group in contacts_due order is its
-- earliest due (the index runs on by next_attempt_at within the group), so
-- the group has a contact due by `due_by` exactly when that one is: the
-- separate EXISTS probe of migration 5 asked the index again for what the
-- first query had already read.
--
-- It matters because a walk from the start of a group first steps over
-- the index entries of the contacts claimed since the last vacuum (their
-- old, pending versions): in a burn-down at 16,000 contacts a second with
-- a vacuum every 30 s, up to 3,000 index pages of them, read on every
-- walk. With `group_first_due` as its lower bound the claim's scan starts
-- past them.
DROP FUNCTION next_due_group(uuid, timestamptz, integer, boolean);

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
