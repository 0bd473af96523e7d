-- The floor of a dialer's writes on dialerd's schema (benches/pgbench.sh with
-- SQL=floor): the fewest rows any engine that claims a contact before its call
-- and records the call after it must write, in bare SQL with no engine and no
-- claim lock around it. Per round trip of :batch contacts:
--   1. the claim: due contacts to in_progress, owned by this client, with
--      dialerd's own claim (locking CTE, SKIP LOCKED, the contacts_due index),
--      committed without waiting for disk;
--   2. a durable write (this client's instance row) whose commit waits for
--      disk, and so for the claim before it: the point where calls may go;
--   3. each contact's attempt, written once and closed (a zero-length call
--      that completed), and the contact moved to completed, in one statement.
-- dialerd writes one more row per contact than this: its open attempt,
-- written before the call and closed after it (benches/sql/write_path.sql).
BEGIN;
SELECT set_config('synchronous_commit', 'off', true);
WITH due AS (
    SELECT c.id FROM contacts c
     WHERE c.organization_id = :org AND c.status = 'pending' AND c.next_attempt_at <= now()
       AND c.campaign_id IN (SELECT k.id FROM campaigns k WHERE k.organization_id = :org AND k.status = 'active' FOR SHARE)
     ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at
     LIMIT :batch FOR UPDATE OF c SKIP LOCKED),
claimed AS (
    UPDATE contacts c SET status = 'in_progress', attempt_count = c.attempt_count + 1,
           owner_instance = ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid,
           claimed_at = now(), updated_at = now()
      FROM due WHERE c.id = due.id RETURNING c.id)
SELECT coalesce(quote_literal(array_agg(id)::text), '''{}''') AS ids FROM claimed \gset
COMMIT;
INSERT INTO dialer_instances (id, hostname, pid, lease_expires_at)
VALUES (('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid, 'pgbench', :client_id, now() + interval '1 hour')
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), lease_expires_at = excluded.lease_expires_at;
WITH mine AS (
    SELECT c.id, c.organization_id, c.campaign_id, c.attempt_count, c.phone_numbers[1] AS phone FROM contacts c
     WHERE c.id = ANY(:ids::uuid[])
       AND c.owner_instance = ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid),
attempt AS (
    INSERT INTO attempts (id, contact_id, organization_id, campaign_id, attempt_number, phone_number, instance_id,
                          created_at, outcome, answered_at, ended_at)
    SELECT gen_random_uuid(), id, organization_id, campaign_id, attempt_count, phone,
           ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid, clock_timestamp(),
           'completed', now(), now()
      FROM mine
    RETURNING contact_id, outcome)
UPDATE contacts c SET status = 'completed', last_outcome = r.outcome, owner_instance = NULL, claimed_at = NULL,
       updated_at = now()
  FROM attempt r
 WHERE c.id = r.contact_id AND c.owner_instance = ('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid;
