-- The raw SQL ceiling (benches/pgbench.sh): in one round trip, claim :batch due
-- contacts with dialerd's own claim (locking select in a CTE, SKIP LOCKED,
-- dialing order from the contacts_due index), write their attempts and
-- finish them: every row dialerd writes for a completed contact, with no
-- engine around it.
WITH due AS (
    SELECT c.id, c.organization_id, c.campaign_id, c.phone_numbers[1] AS phone
      FROM contacts c
     WHERE c.organization_id = :org AND c.status = 'pending' AND c.next_attempt_at <= now()
     ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at
     LIMIT :batch
       FOR UPDATE OF c SKIP LOCKED),
done AS (
    UPDATE contacts c SET status = 'completed', attempt_count = c.attempt_count + 1,
           last_outcome = 'completed', updated_at = now()
      FROM due WHERE c.id = due.id
 RETURNING c.id)
INSERT INTO attempts (id, organization_id, contact_id, campaign_id, attempt_number, phone_number,
                      instance_id, outcome, answered_at, ended_at)
SELECT gen_random_uuid(), due.organization_id, due.id, due.campaign_id, 1, due.phone,
       gen_random_uuid(), 'completed', now(), now()
  FROM due JOIN done ON done.id = due.id;
