-- dialerd's own writes for a completed contact, in bare SQL (benches/pgbench.sh
-- with SQL=write_path): the engine's claim, attempt start and result statements
-- as they stand (src/db/claim.rs, attempts.rs and results.rs), cut down to
-- one organization, with no engine around them. Per round trip of :batch contacts:
--   1. the claim, under the advisory lock every claim of every daemon takes,
--      committed without waiting for disk;
--   2. the open attempts, written for the contacts still claimed, contacts and
--      campaign share-locked (this commit waits for disk; calls go after it);
--   3. the attempts closed (a zero-length call that completed) and their
--      contacts moved to completed, in one statement.
BEGIN;
SELECT pg_advisory_xact_lock(x'6469616c6572'::int8), set_config('synchronous_commit', 'off', true);
WITH due AS (
    SELECT c.id FROM contacts c
     WHERE c.organization_id = :org AND c.status = 'pending' AND c.next_attempt_at <= now()
     ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at
     LIMIT :batch FOR UPDATE OF c SKIP LOCKED),
claimed AS (
    UPDATE contacts c SET status = 'in_progress', attempt_count = c.attempt_count + 1,
           owner_instance = ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid,
           claimed_at = now(), updated_at = now()
      FROM due WHERE c.id = due.id RETURNING c.id)
SELECT coalesce(quote_literal(array_agg(id)::text), '''{}''') AS ids FROM claimed \gset
COMMIT;
WITH live AS (
    SELECT k.id FROM campaigns k WHERE k.organization_id = :org AND k.status = 'active' FOR SHARE),
mine AS (
    SELECT c.id, c.organization_id, c.campaign_id, c.attempt_count, c.phone_numbers[1] AS phone FROM contacts c
     WHERE c.id = ANY(:ids::uuid[]) AND c.status = 'in_progress'
       AND c.owner_instance = ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid
       AND c.campaign_id IN (SELECT id FROM live)
       FOR SHARE OF c),
opened AS (
    INSERT INTO attempts (id, contact_id, organization_id, campaign_id, attempt_number, phone_number, instance_id,
                          created_at)
    SELECT gen_random_uuid(), id, organization_id, campaign_id, attempt_count, phone,
           ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid, clock_timestamp()
      FROM mine
    RETURNING id)
SELECT coalesce(quote_literal(array_agg(id)::text), '''{}''') AS attempt_ids FROM opened \gset
WITH closed AS (
    UPDATE attempts a SET outcome = 'completed', answered_at = now(), ended_at = now()
     WHERE a.id = ANY(:attempt_ids::uuid[]) AND a.ended_at IS NULL
    RETURNING a.contact_id, a.outcome)
UPDATE contacts c SET status = 'completed', last_outcome = r.outcome, owner_instance = NULL, claimed_at = NULL,
       updated_at = now()
  FROM closed r
 WHERE c.id = r.contact_id AND c.owner_instance = ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid;
