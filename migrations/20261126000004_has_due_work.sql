-- Whether an organization has a waiting contact due by `due_by`, asked
-- group by group of (priority, retry) in dialing order, one index probe
-- per group.
--
-- contacts_due is in (priority, retry, due time) order, so asking of the
-- whole organization at once cannot stop at the first contact not yet due:
-- when none was due it read every waiting contact (58.6 ms for 300,000
-- contacts due later, on every claim tick of a daemon with nothing to do).
-- Within one group the index is in due order, so asking group by group
-- stops at once. PL/pgSQL rather than one recursive query: its simple
-- statements cost less to plan than the query cost to plan in every claim.
CREATE FUNCTION has_due_work(org uuid, due_by timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p integer;
    r boolean;
    next_p integer;
    next_r boolean;
BEGIN
    SELECT c.priority, c.attempt_count > 0 INTO p, r FROM contacts c
     WHERE c.organization_id = org AND c.status = 'pending'
     ORDER BY c.priority DESC, (c.attempt_count > 0) LIMIT 1;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    LOOP
        -- "= (SELECT r)", not "= r": compared with a constant, the planner
        -- rewrites the test to "attempt_count <= 0", which no longer matches
        -- the index's column, and the due time stops bounding the scan.
        IF EXISTS (SELECT 1 FROM contacts c
                    WHERE c.organization_id = org AND c.status = 'pending' AND c.priority = p
                      AND (c.attempt_count > 0) = (SELECT r) AND c.next_attempt_at <= due_by) THEN
            RETURN true;
        END IF;
        -- The next group: this priority's retries after its fresh contacts...
        SELECT c.priority, c.attempt_count > 0 INTO next_p, next_r FROM contacts c
         WHERE c.organization_id = org AND c.status = 'pending' AND c.priority = p
           AND (c.attempt_count > 0) > r
         ORDER BY c.priority DESC, (c.attempt_count > 0) LIMIT 1;
        IF NOT FOUND THEN
            -- ...else the next lower priority.
            SELECT c.priority, c.attempt_count > 0 INTO next_p, next_r FROM contacts c
             WHERE c.organization_id = org AND c.status = 'pending' AND c.priority < p
             ORDER BY c.priority DESC, (c.attempt_count > 0) LIMIT 1;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
        END IF;
        p := next_p;
        r := next_r;
    END LOOP;
END
$$;
