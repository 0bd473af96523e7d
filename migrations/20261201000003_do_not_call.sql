-- Do-not-call (suppression) lists: an organization's own, or global
-- (organization_id NULL: loaded by the installation's operator, applied to
-- every organization). A number on a list that applies is never dialed.
CREATE TABLE dnc_lists (
    id              uuid PRIMARY KEY,
    -- The 4-byte key the numbers carry (a uuid would be 16).
    key             integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Country of numbers added without a leading +.
    default_country text,
    -- The generation of numbers in force: `dialerd dnc load` loads a new
    -- one beside it and switches to it in one short transaction.
    generation      integer NOT NULL DEFAULT 1,
    -- Raised by every change of the list's numbers.
    version         bigint NOT NULL DEFAULT 1,
    -- Numbers in force.
    size            bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (organization_id, name)
);

-- A number is its E.164 digits as an 8-byte integer (+14155550123 is
-- 14155550123). Keyed by number first: a claim checks the numbers of the
-- contacts it takes with one index probe each. No foreign key: its check
-- would run once per row of a load of millions; deleting a list deletes
-- its numbers in the same transaction.
CREATE TABLE dnc_numbers (
    number     bigint NOT NULL,
    list_key   integer NOT NULL,
    generation integer NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (number, list_key, generation)
);
CREATE INDEX dnc_numbers_by_list ON dnc_numbers (list_key, generation);

-- A stored number as dnc_numbers keys it; NULL for text not shaped like E.164.
CREATE FUNCTION dnc_number(n text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN n ~ '^\+[1-9][0-9]{6,14}$' THEN substr(n, 2)::bigint END
$$;

-- The indexes (0-based) of `numbers` on a list that applies to `org`.
CREATE FUNCTION dnc_suppressed(numbers text[], org uuid) RETURNS integer[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(p.i - 1 ORDER BY p.i), '{}')
      FROM unnest(numbers) WITH ORDINALITY AS p(n, i)
     WHERE EXISTS (SELECT 1 FROM dnc_numbers d
                     JOIN dnc_lists l ON l.key = d.list_key AND l.generation = d.generation
                    WHERE d.number = dnc_number(p.n)
                      AND (l.organization_id IS NULL OR l.organization_id = org))
$$;

-- Raised on a claimed contact by a list change that adds one of its
-- numbers: the attempt write, which share-locks the contact and compares
-- this with what its claim saw, then writes no attempt for it.
ALTER TABLE contacts ADD COLUMN dnc_epoch integer NOT NULL DEFAULT 0;

-- What the claim saw when it allowed the call (domain::evidence::Evidence):
-- the zone checked and its source, the local time there, the window that
-- let it through, the do-not-call lists checked and their versions.
-- Null only for attempts written before this column existed.
ALTER TABLE attempts ADD COLUMN evidence jsonb;
