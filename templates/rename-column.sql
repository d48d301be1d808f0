{#- Renames a column without breaking running code (expand/contract): add the new column with the
    old one's type, default and comment, keep both in sync with a trigger, backfill, build copies
    of the column's indexes (CONCURRENTLY) and constraints (NOT VALID, then VALIDATE) on the new
    column, move NOT NULL without a write-blocking scan, wait (manual gate) while the application
    switches to the new name — the views that read the column are then created again reading the
    new one, each of their columns keeping its name — and only after the rollback window drop the trigger and the old
    column, give the copies their original names and move the column's identity or sequence.
    `carry` is what the catalog says hangs off the column (see render/carry.rs). -#}
-- Migration: rename {{ table | ident }}.{{ column | ident }} to {{ new_name | ident }}
-- Rollback strategy: every step's down; the contract step's down re-adds the old column from the new one, with its indexes, constraints, identity and comment
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
{%- if carry.column.comment %}
COMMENT ON COLUMN {{ table | ident }}.{{ new_name | ident }} IS {{ carry.column.comment | literal }};
{%- endif %}
{% include "rename-column-sync" %}
-- drydock:down
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} DROP COLUMN {{ new_name | ident }};
-- drydock:step backfill
-- drydock:backfill
{{ backfill | json }}
-- drydock:down
SELECT 1 -- the expand step's down drops the new column
{%- include "carry-indexes-step" %}
-- drydock:step constraints
-- drydock:up
DO $drydock$ BEGIN
    -- NOT NULL carries over without a write-blocking scan: CHECK … NOT VALID, then VALIDATE.
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I IS NOT NULL) NOT VALID', {{ table | literal }}, {{ not_null_check | literal }}, {{ new_name | literal }});
    END IF;
END $drydock$;
{%- for c in carry.constraints %}
{{ c.create }};
{%- endfor %}
-- drydock:down
ALTER TABLE {{ table | ident }} DROP CONSTRAINT IF EXISTS {{ not_null_check | ident }};
{%- for c in carry.constraints %}
ALTER TABLE {{ table | ident }} DROP CONSTRAINT IF EXISTS {{ c.temp | ident }};
{%- endfor %}
-- drydock:step validate
-- drydock:up
{%- for c in carry.constraints %}{% if c.valid %}
ALTER TABLE {{ table | ident }} VALIDATE CONSTRAINT {{ c.temp | ident }};
{%- endif %}{% endfor %}
DO $drydock$ BEGIN
    -- Last: SET NOT NULL takes ACCESS EXCLUSIVE (briefly: the validated check proves it), and a
    -- lock taken is held to the end of the transaction.
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {{ table | ident | literal }}::regclass AND conname = {{ not_null_check | literal }}) THEN
        EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', {{ table | literal }}, {{ not_null_check | literal }});
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET NOT NULL', {{ table | literal }}, {{ new_name | literal }});
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', {{ table | literal }}, {{ not_null_check | literal }});
    END IF;
END $drydock$;
-- drydock:down
DO $drydock$ BEGIN
    -- Back to the constraints step's end state: the column nullable again, the check in place.
    IF (SELECT attnotnull FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ new_name | literal }}) THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', {{ table | literal }}, {{ new_name | literal }});
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I IS NOT NULL) NOT VALID', {{ table | literal }}, {{ not_null_check | literal }}, {{ new_name | literal }});
    END IF;
END $drydock$;
{%- for c in carry.constraints %}{% if c.valid %}
ALTER TABLE {{ table | ident }} DROP CONSTRAINT {{ c.temp | ident }};
{{ c.create }};
{%- endif %}{% endfor %}
-- drydock:step switched manual
-- drydock:up
{%- include "carry-views-drop" %}
{%- set repointed = true %}
{%- include "carry-views-create" %}
SELECT 1 -- from here on the application reads and writes {{ new_name | ident }}, and so do the views on {{ column | ident }}
-- drydock:down
{%- include "carry-views-drop" %}
{%- set repointed = false %}
{%- include "carry-views-create" %}
SELECT 1 -- the application's gate; the views read {{ column | ident }} again
-- drydock:step contract after=rollback_window
-- drydock:up
{%- set dropped = column %}
{% include "carry-guard" %}
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
{%- set from = column %}{% set to = new_name %}
{% include "carry-sequence" %}
ALTER TABLE {{ table | ident }} DROP COLUMN {{ column | ident }};
{%- include "carry-names" %}
-- drydock:down
{%- include "carry-names-back" %}
DO $drydock$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN %I %s', {{ table | literal }}, {{ column | literal }}, (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ new_name | literal }})); END $drydock$;
ALTER TABLE {{ table | ident }} DISABLE TRIGGER USER; -- values put back, not written: no last_update stamp, no audit row
UPDATE {{ table | ident }} SET {{ column | ident }} = {{ new_name | ident }};
ALTER TABLE {{ table | ident }} ENABLE TRIGGER USER;
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
{%- set from = new_name %}{% set to = column %}
{% include "carry-sequence" %}
{%- set restored = column %}
{%- include "carry-restore" %}
{% include "rename-column-sync" %}
{%- for i in carry.indexes %}
{{ i.restore }};
{%- endfor %}
