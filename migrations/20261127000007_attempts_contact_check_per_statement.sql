-- The attempts' reference to their contact, checked once per statement
-- instead of once per row.
--
-- The foreign key ran its check as a separate query for every attempt
-- written, and every session of the daemon plans each statement for its
-- own parameters (plan_cache_mode = force_custom_plan, see README), that
-- query included: every attempt written paid a full planning of
-- "SELECT 1 FROM contacts WHERE id = $1 FOR KEY SHARE". In a burn-down
-- (800,000 due, 4,000 lines) without the key at all, a run did 13,208
-- contacts/s at 111 us of PostgreSQL CPU per contact, against 8,453 to
-- 10,164 at 157 to 189 us with it; with the triggers below, 9,920 and
-- 10,167 at 151 and 146 us (BENCHMARKS.md, seventh round). The same
-- guarantees, kept by statement-level triggers that look at all of a
-- statement's rows in one query:
--
-- * an attempt is written (or moved) only for a contact that exists, and
--   that contact is key-share locked until the writer commits, as the
--   foreign key's check locks it, so a concurrent delete either waits for
--   the writer or is seen by it;
-- * deleting contacts deletes their attempts (ON DELETE CASCADE), in the
--   same statement, whether the contacts go one by one or by cascade from
--   their campaign or organization; TRUNCATE of contacts empties attempts;
-- * a contact's id does not change (the foreign key refused that while
--   attempts referenced it; nothing changes ids).
ALTER TABLE attempts DROP CONSTRAINT attempts_contact_id_fkey;

CREATE FUNCTION attempts_check_contacts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    -- The distinct contacts of the statement's new attempts, each looked
    -- up and key-share locked, in one query.
    SELECT count(*), count(c.id) INTO wanted, found
      FROM (SELECT DISTINCT contact_id FROM new_attempts) n
           LEFT JOIN LATERAL (SELECT c.id FROM contacts c WHERE c.id = n.contact_id FOR KEY SHARE) c
           ON true;
    IF found < wanted THEN
        RAISE EXCEPTION 'an attempt must belong to an existing contact (% of % contacts not found)',
                        wanted - found, wanted
              USING ERRCODE = 'foreign_key_violation', TABLE = 'attempts',
                    CONSTRAINT = 'attempts_contact_id_fkey';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_check_contacts
    AFTER INSERT ON attempts REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION attempts_check_contacts();

-- An attempt moved to another contact (nothing does that) is checked row
-- by row: the trigger fires only for an UPDATE that names contact_id, so
-- closing attempts, which does not, pays nothing for it.
CREATE FUNCTION attempts_check_moved_contact() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM contacts c WHERE c.id = NEW.contact_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'an attempt must belong to an existing contact (% not found)', NEW.contact_id
              USING ERRCODE = 'foreign_key_violation', TABLE = 'attempts',
                    CONSTRAINT = 'attempts_contact_id_fkey';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER attempts_check_moved_contact
    BEFORE UPDATE OF contact_id ON attempts
    FOR EACH ROW WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id)
    EXECUTE FUNCTION attempts_check_moved_contact();

CREATE FUNCTION contacts_delete_attempts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE attempts;
    ELSE
        DELETE FROM attempts a USING gone_contacts g WHERE a.contact_id = g.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_delete_attempts
    AFTER DELETE ON contacts REFERENCING OLD TABLE AS gone_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_delete_attempts();
CREATE TRIGGER contacts_truncate_attempts
    AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_delete_attempts();

CREATE FUNCTION contacts_keep_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a contact''s id does not change' USING ERRCODE = 'foreign_key_violation';
END
$$;

-- Fires only for an UPDATE that names id (none of the daemon's do).
CREATE TRIGGER contacts_keep_id
    BEFORE UPDATE OF id ON contacts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION contacts_keep_id();
