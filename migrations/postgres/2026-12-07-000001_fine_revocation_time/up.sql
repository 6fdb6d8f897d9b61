-- tokens_valid_after stays in unix seconds (the contract names it), now with a fraction:
-- revocation cuts at the millisecond, so that a token issued just after a revocation in
-- the same second is not refused, and iat no longer has to run ahead of the clock to say
-- so. Whole seconds stored so far keep their meaning.
ALTER TABLE users ALTER COLUMN tokens_valid_after TYPE double precision;
