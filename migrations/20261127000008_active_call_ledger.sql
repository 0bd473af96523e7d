-- Active calls per organization kept in a ledger, so that the claim reads
-- a handful of rows instead of counting every locked or in-progress
-- contact.
--
-- Every claim counted the active contacts of every organization under the
-- lock that serializes claims. That count read the contacts_active index
-- and, as the pages of a busy queue are never all-visible, the heap behind
-- each entry: in a burn-down at 4,000 lines, 4,404 to 9,880 heap fetches
-- and 2.0 to 7.0 ms a claim, about 30 % of the claim (BENCHMARKS.md,
-- eighth round). The ledger holds signed changes to that count instead:
-- statement-level triggers on contacts add, for each statement that moves
-- contacts into or out of 'locked'/'in_progress' (or inserts or deletes
-- such contacts), one row per organization with the statement's net
-- change. The count of an organization is the sum of its rows. The rows
-- are written in the writer's own transaction, so a reader sees a change
-- exactly when it sees the contacts' change: the count stays exact at any
-- snapshot, whoever writes (the daemon, the API, psql).
--
-- Writers only insert, so they never wait on one another. The claim folds
-- the ledger (each organization's rows replaced by their sum, in one
-- statement) once it has grown well past one row per organization.
--
-- No foreign key to organizations: deleting an organization deletes its
-- contacts by cascade, whose trigger then writes the organization's last
-- (negative) change; the fold drops organizations whose rows sum to zero.
CREATE TABLE active_call_deltas (
    organization_id uuid NOT NULL,
    delta           bigint NOT NULL
);

CREATE FUNCTION contacts_count_active() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE active_call_deltas;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO active_call_deltas (organization_id, delta)
        SELECT organization_id, count(*) FROM new_contacts
         WHERE status IN ('locked', 'in_progress') GROUP BY organization_id;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO active_call_deltas (organization_id, delta)
        SELECT organization_id, -count(*) FROM old_contacts
         WHERE status IN ('locked', 'in_progress') GROUP BY organization_id;
    ELSE
        INSERT INTO active_call_deltas (organization_id, delta)
        SELECT organization_id, sum(d) FROM (
                   SELECT organization_id, 1 AS d FROM new_contacts
                    WHERE status IN ('locked', 'in_progress')
                   UNION ALL
                   SELECT organization_id, -1 FROM old_contacts
                    WHERE status IN ('locked', 'in_progress')) changes
         GROUP BY organization_id HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

-- A trigger with transition tables takes one event each.
CREATE TRIGGER contacts_count_active_insert
    AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_active();
CREATE TRIGGER contacts_count_active_update
    AFTER UPDATE ON contacts REFERENCING OLD TABLE AS old_contacts NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_active();
CREATE TRIGGER contacts_count_active_delete
    AFTER DELETE ON contacts REFERENCING OLD TABLE AS old_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_active();
CREATE TRIGGER contacts_count_active_truncate
    AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_active();

-- The count as it stands. Creating the triggers above locked contacts
-- against writes until this migration commits, so no change falls between
-- this count and the triggers.
INSERT INTO active_call_deltas (organization_id, delta)
SELECT organization_id, count(*) FROM contacts
 WHERE status IN ('locked', 'in_progress') GROUP BY organization_id;
