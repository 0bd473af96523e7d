-- Do-not-call numbers kept in blocks of 256 consecutive numbers: a row holds
-- the members of one block (number & 255, ascending) listed at one moment
-- on one generation of one list. A national registry lists a few percent of
-- its numbering space, so a block row carries several numbers: 2 bytes a
-- number and a row's overhead shared between them; and a load writes a row,
-- and an index entry, a block.
-- A number is on a list (generation) when a row of its block for that list
-- holds its member. Numbers are on one row at most (each change adds only
-- numbers not on the list); a list's numbers added at different moments are
-- on different rows of the same block.
CREATE TABLE dnc_blocks (
    block      bigint NOT NULL,     -- number >> 8
    list_key   integer NOT NULL,
    generation integer NOT NULL,
    since      timestamptz NOT NULL DEFAULT now(),
    members    smallint[] NOT NULL CHECK (cardinality(members) BETWEEN 1 AND 256)
);
-- A claim's probe of a number: its block, then the lists.
CREATE INDEX dnc_blocks_by_block ON dnc_blocks (block, list_key, generation);
CREATE INDEX dnc_blocks_by_list ON dnc_blocks (list_key, generation);

-- The block and member of a stored number (`dnc_number`).
CREATE FUNCTION dnc_block(n bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT n >> 8 $$;
CREATE FUNCTION dnc_member(n bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (n & 255)::smallint $$;

INSERT INTO dnc_blocks (block, list_key, generation, since, members)
SELECT dnc_block(number), list_key, generation, added_at,
       array_agg(dnc_member(number) ORDER BY number)
  FROM dnc_numbers
 GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE FUNCTION dnc_suppressed(numbers text[], org uuid) RETURNS integer[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(p.i - 1 ORDER BY p.i), '{}')
      FROM unnest(numbers) WITH ORDINALITY AS p(n, i)
     WHERE EXISTS (SELECT 1 FROM dnc_blocks d
                     JOIN dnc_lists l ON l.key = d.list_key AND l.generation = d.generation
                    WHERE d.block = dnc_block(dnc_number(p.n))
                      AND dnc_member(dnc_number(p.n)) = ANY(d.members)
                      AND (l.organization_id IS NULL OR l.organization_id = org))
$$;

DROP TABLE dnc_numbers;
