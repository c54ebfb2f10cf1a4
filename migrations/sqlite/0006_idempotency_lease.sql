-- A request still running holds its Idempotency-Key under a lease it renews while it works; a
-- placeholder whose lease has lapsed (its process died) is taken over by the next request with
-- that key. `seed` derives the ids the request creates, so a re-run finds what a first run
-- committed before it died and answers from it instead of doing the work twice.
ALTER TABLE idempotency_keys ADD COLUMN lease_until TEXT;
ALTER TABLE idempotency_keys ADD COLUMN seed TEXT NOT NULL DEFAULT '';
