{#- Changes a column's type without a rewrite under ACCESS EXCLUSIVE. expand: a shadow column of
    the new type with the old default, kept in sync by a trigger; backfill in batches; add-check
    and validate: when the column is NOT NULL, a CHECK on the shadow added NOT VALID and
    validated without a write lock; swap (manual gate, one short transaction): the shadow takes
    the column's name and its NOT NULL (instant, proven by the check), the old column keeps its
    values but no longer requires them; contract (after the rollback window): drop the old
    column. The column's old definition is kept in a comment so every down restores it exactly. -#}
-- Migration: change {{ table | ident }}.{{ column | ident }} to {{ new_type | sqltype }}
-- Rollback strategy: every step's down, in reverse; until the contract step the old column keeps every value written before the swap
-- drydock:step expand
-- drydock:up
ALTER TABLE {{ table | ident }} ADD COLUMN {{ shadow | ident }} {{ new_type | sqltype }};
DO $drydock$
DECLARE
    col record;
BEGIN
    SELECT a.attnotnull, format_type(a.atttypid, a.atttypmod) AS type, pg_get_expr(d.adbin, d.adrelid) AS dflt INTO col
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = {{ table | ident | literal }}::regclass AND a.attname = {{ column | literal }};
    EXECUTE format('COMMENT ON COLUMN %I.%I IS %L', {{ table | literal }}, {{ shadow | literal }},
        json_build_object('type', col.type, 'not_null', col.attnotnull, 'default', col.dflt)::text);
    IF col.dflt IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT (%s)::{{ new_type | sqltype }}', {{ table | literal }}, {{ shadow | literal }}, col.dflt);
    END IF;
END
$drydock$;
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    NEW.{{ shadow | ident }} := (SELECT ({{ using }})::{{ new_type | sqltype }} FROM (SELECT NEW.*) AS src);
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} BEFORE INSERT OR UPDATE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
-- drydock:down
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} DROP COLUMN {{ shadow | ident }};
-- drydock:step backfill
-- drydock:backfill
{{ backfill | json }}
-- drydock:down
SELECT 1 -- the expand step's down drops the shadow column
-- drydock:step add-check
-- drydock:up
DO $drydock$ BEGIN
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I IS NOT NULL) NOT VALID', {{ table | literal }}, {{ check | literal }}, {{ shadow | literal }});
    END IF;
END $drydock$;
-- drydock:down
ALTER TABLE {{ table | ident }} DROP CONSTRAINT IF EXISTS {{ check | ident }};
-- drydock:step validate
-- drydock:up
DO $drydock$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {{ table | ident | literal }}::regclass AND conname = {{ check | literal }}) THEN
        EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', {{ table | literal }}, {{ check | literal }});
    END IF;
END $drydock$;
-- drydock:down
SELECT 1 -- the add-check step's down drops the constraint
-- drydock:step swap manual
-- drydock:up
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ column | ident }} DROP NOT NULL;
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ column | ident }} TO {{ old | ident }};
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ shadow | ident }} TO {{ column | ident }};
DO $drydock$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {{ table | ident | literal }}::regclass AND conname = {{ check | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', {{ table | literal }}, {{ column | literal }});
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', {{ table | literal }}, {{ check | literal }});
    END IF;
END $drydock$;
-- drydock:down
DO $drydock$ BEGIN
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', {{ table | literal }}, {{ column | literal }});
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I IS NOT NULL)', {{ table | literal }}, {{ check | literal }}, {{ column | literal }});
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', {{ table | literal }}, {{ old | literal }});
    END IF;
END $drydock$;
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ column | ident }} TO {{ shadow | ident }};
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ old | ident }} TO {{ column | ident }};
CREATE TRIGGER {{ trigger | ident }} BEFORE INSERT OR UPDATE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
-- drydock:step contract after=rollback_window
-- drydock:up
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} DROP COLUMN {{ old | ident }};
-- drydock:down
DO $drydock$
DECLARE
    def json := col_description({{ table | ident | literal }}::regclass,
        (SELECT attnum FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }})::int)::json;
BEGIN
    EXECUTE format('ALTER TABLE %I ADD COLUMN %I %s', {{ table | literal }}, {{ old | literal }}, def->>'type');
    IF def->>'default' IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %s', {{ table | literal }}, {{ old | literal }}, def->>'default');
    END IF;
    EXECUTE format('UPDATE %I SET %I = %I::%s', {{ table | literal }}, {{ old | literal }}, {{ column | literal }}, def->>'type');
END
$drydock$;
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    NEW.{{ shadow | ident }} := (SELECT ({{ using }})::{{ new_type | sqltype }} FROM (SELECT NEW.*) AS src);
    RETURN NEW;
END
$drydock$;
