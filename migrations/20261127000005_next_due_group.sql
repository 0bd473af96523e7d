-- The first (priority, retry) group of an organization's waiting contacts,
-- in dialing order after the group (after_priority, after_retry) (from
-- the start when they are NULL), that has a contact due by `due_by`;
-- NULLs when there is none.
--
-- The claim asks one group at a time, with its priority and retry pinned:
-- within a group contacts_due is in due order, so the claim's scan stops
-- at the first contact not yet due. Asked of the whole organization at
-- once it could not, and when fewer contacts were due than it asked for
-- it read on through every contact due later (the dispatch lag at half the
-- peak grew with the backlog of contacts due later). Replaces
-- has_due_work, which answered only whether there was such a group.
--
-- One index probe per group passed over. The "= (SELECT r)" keeps the
-- retry test a comparison with the index's column: compared with a
-- constant, the planner rewrites it to "attempt_count <= 0", which no
-- longer matches the index, and the due time stops bounding the scan.
CREATE FUNCTION next_due_group(org uuid, due_by timestamptz,
                               after_priority integer, after_retry boolean,
                               OUT group_priority integer, OUT group_retry boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p integer := after_priority;
    r boolean := after_retry;
BEGIN
    LOOP
        -- This priority's retries after its fresh contacts (nothing before
        -- the first group, p and r NULL)...
        SELECT c.priority, c.attempt_count > 0 INTO group_priority, group_retry FROM contacts c
         WHERE c.organization_id = org AND c.status = 'pending' AND c.priority = p
           AND (c.attempt_count > 0) > r
         ORDER BY c.priority DESC, (c.attempt_count > 0) LIMIT 1;
        IF NOT FOUND THEN
            -- ...else the next lower priority (the highest at first: no
            -- priority is above 1000000).
            SELECT c.priority, c.attempt_count > 0 INTO group_priority, group_retry FROM contacts c
             WHERE c.organization_id = org AND c.status = 'pending' AND c.priority < coalesce(p, 1000001)
             ORDER BY c.priority DESC, (c.attempt_count > 0) LIMIT 1;
        END IF;
        -- No row leaves both NULL: no group left.
        p := group_priority;
        r := group_retry;
        IF p IS NULL OR EXISTS (
                SELECT 1 FROM contacts c
                 WHERE c.organization_id = org AND c.status = 'pending' AND c.priority = p
                   AND (c.attempt_count > 0) = (SELECT r) AND c.next_attempt_at <= due_by) THEN
            RETURN;
        END IF;
    END LOOP;
END
$$;

DROP FUNCTION has_due_work(uuid, timestamptz);
