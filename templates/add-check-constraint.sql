{#- Adds a CHECK constraint without a long write lock: NOT VALID, then VALIDATE in its own
    transaction. The expression is parsed as exactly one SQL expression. -#}
-- Migration: check constraint {{ name | ident }} on {{ table | ident }}
-- drydock:step add-check
-- drydock:up
ALTER TABLE {{ table | ident }} ADD CONSTRAINT {{ name | ident }} CHECK ({{ expression }}) NOT VALID;
-- drydock:down
ALTER TABLE {{ table | ident }} DROP CONSTRAINT {{ name | ident }};
-- drydock:step validate
-- drydock:up
ALTER TABLE {{ table | ident }} VALIDATE CONSTRAINT {{ name | ident }};
-- drydock:down
SELECT 1 -- the add-check step's down drops the constraint
-- drydock:check constraint-valid true
SELECT count(*) = 1 FROM pg_constraint WHERE conname = {{ name | literal }} AND conrelid = to_regclass({{ table | ident | literal }}) AND convalidated
