{#- Renames a column without breaking running code (expand/contract): add the new column with the
    old one's type, keep both in sync with a trigger, backfill, wait (manual gate) while the
    application switches to the new name, and drop the trigger and the old column only after the
    rollback window. -#}
-- Migration: rename {{ table | ident }}.{{ column | ident }} to {{ new_name | ident }}
-- Rollback strategy: every step's down; the contract step's down re-adds the old column from the new one
-- drydock:step expand
-- drydock:up
DO $drydock$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN %I %s', {{ table | literal }}, {{ new_name | literal }}, (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }})); END $drydock$;
DO $drydock$
DECLARE dflt text;
BEGIN
    -- The new column gets the old one's default (a serial's nextval included).
    SELECT pg_get_expr(d.adbin, d.adrelid) INTO dflt FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    WHERE d.adrelid = {{ table | ident | literal }}::regclass AND a.attname = {{ column | literal }};
    IF dflt IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %s', {{ table | literal }}, {{ new_name | literal }}, dflt);
    END IF;
END
$drydock$;
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.{{ new_name | ident }} IS NULL THEN NEW.{{ new_name | ident }} := NEW.{{ column | ident }}; ELSE NEW.{{ column | ident }} := NEW.{{ new_name | ident }}; END IF;
    ELSIF NEW.{{ new_name | ident }} IS DISTINCT FROM OLD.{{ new_name | ident }} THEN
        NEW.{{ column | ident }} := NEW.{{ new_name | ident }};
    ELSE
        NEW.{{ new_name | ident }} := NEW.{{ column | ident }};
    END IF;
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} BEFORE INSERT OR UPDATE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
-- drydock:down
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} DROP COLUMN {{ new_name | ident }};
-- drydock:step backfill
-- drydock:backfill
{{ backfill | json }}
-- drydock:down
SELECT 1 -- the expand step's down drops the new column
-- drydock:step not-null
-- drydock:up
DO $drydock$ BEGIN
    -- NOT NULL carries over without a write-blocking scan: CHECK … NOT VALID, then VALIDATE.
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I IS NOT NULL) NOT VALID', {{ table | literal }}, {{ not_null_check | literal }}, {{ new_name | literal }});
    END IF;
END $drydock$;
-- drydock:down
ALTER TABLE {{ table | ident }} DROP CONSTRAINT IF EXISTS {{ not_null_check | ident }};
-- drydock:step not-null-validate
-- drydock:up
DO $drydock$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {{ table | ident | literal }}::regclass AND conname = {{ not_null_check | literal }}) THEN
        EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', {{ table | literal }}, {{ not_null_check | literal }});
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', {{ table | literal }}, {{ new_name | literal }});
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', {{ table | literal }}, {{ not_null_check | literal }});
    END IF;
END $drydock$;
-- drydock:down
DO $drydock$ BEGIN
    -- Back to the not-null step's end state: the column nullable again, the check in place.
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ new_name | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', {{ table | literal }}, {{ new_name | literal }});
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I IS NOT NULL) NOT VALID', {{ table | literal }}, {{ not_null_check | literal }}, {{ new_name | literal }});
    END IF;
END $drydock$;
-- drydock:step switched manual
-- drydock:up
COMMENT ON COLUMN {{ table | ident }}.{{ new_name | ident }} IS 'drydock: the application reads and writes this column (renamed from {{ column }})';
-- drydock:down
COMMENT ON COLUMN {{ table | ident }}.{{ new_name | ident }} IS NULL;
-- drydock:step contract after=rollback_window
-- drydock:up
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} DROP COLUMN {{ column | ident }};
-- drydock:down
DO $drydock$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN %I %s', {{ table | literal }}, {{ column | literal }}, (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ new_name | literal }})); END $drydock$;
UPDATE {{ table | ident }} SET {{ column | ident }} = {{ new_name | ident }};
DO $drydock$
DECLARE dflt text;
BEGIN
    -- The old column comes back as it was: the new one carries its default and NOT NULL.
    SELECT pg_get_expr(d.adbin, d.adrelid) INTO dflt FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    WHERE d.adrelid = {{ table | ident | literal }}::regclass AND a.attname = {{ new_name | literal }};
    IF dflt IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %s', {{ table | literal }}, {{ column | literal }}, dflt);
    END IF;
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ new_name | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', {{ table | literal }}, {{ column | literal }});
    END IF;
END
$drydock$;
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.{{ new_name | ident }} IS NULL THEN NEW.{{ new_name | ident }} := NEW.{{ column | ident }}; ELSE NEW.{{ column | ident }} := NEW.{{ new_name | ident }}; END IF;
    ELSIF NEW.{{ new_name | ident }} IS DISTINCT FROM OLD.{{ new_name | ident }} THEN
        NEW.{{ column | ident }} := NEW.{{ new_name | ident }};
    ELSE
        NEW.{{ new_name | ident }} := NEW.{{ column | ident }};
    END IF;
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} BEFORE INSERT OR UPDATE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
