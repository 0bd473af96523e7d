-- Platform status callbacks find their attempt by the platform's
-- conversation id (src/db/calls.rs, FIND_CALLBACK_ATTEMPT). With no index
-- on it, every callback read the whole attempts table, and so grew slower
-- with every call ever made: 111 to 117 ms and about 68,000 pages a
-- callback at 1,500,000 attempts; 0.10 to 0.14 ms with this index
-- (EXPLAIN (ANALYZE, BUFFERS); BENCHMARKS.md, tenth round).
--
-- A hash index: the lookup is by equality only, and an entry holds a
-- 4-byte hash of the id rather than the id itself (49 MB for 1,500,000
-- attempts). Every answered call has a conversation id, so every answered
-- call adds an entry: 166 to 187 more WAL bytes per contact in the
-- throughput run. Attempts with no conversation id have no entry.
--
-- Built in the migration's transaction, so writes to attempts wait for it
-- while it builds.
CREATE INDEX attempts_by_conversation ON attempts USING hash (conversation_id)
    WHERE conversation_id IS NOT NULL;
