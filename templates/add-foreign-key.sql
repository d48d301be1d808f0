{#- Adds a foreign key without a long write lock: NOT VALID (instant), then VALIDATE in its own
    transaction (SHARE UPDATE EXCLUSIVE: reads and writes continue). -#}
-- Migration: foreign key {{ table | ident }} ({{ columns_sql }}) → {{ ref_table | ident }} ({{ ref_columns_sql }})
-- drydock:step add-foreign-key
-- drydock:up
ALTER TABLE {{ table | ident }} ADD CONSTRAINT {{ name | ident }} FOREIGN KEY ({{ columns_sql }}) REFERENCES {{ ref_table | ident }} ({{ ref_columns_sql }}){{ actions_sql }} NOT VALID;
-- drydock:down
ALTER TABLE {{ table | ident }} DROP CONSTRAINT {{ name | ident }};
-- drydock:step validate
-- drydock:up
ALTER TABLE {{ table | ident }} VALIDATE CONSTRAINT {{ name | ident }};
-- drydock:down
SELECT 1 -- the add-foreign-key step's down drops the constraint
-- drydock:check constraint-valid true
SELECT count(*) = 1 FROM pg_constraint WHERE conname = {{ name | literal }} AND conrelid = to_regclass({{ table | ident | literal }}) AND convalidated
