{#- Changes a column's type without a rewrite under ACCESS EXCLUSIVE. expand: a shadow column of
    the new type with the old default and comment, kept in sync by a trigger; backfill in batches;
    indexes: the column's indexes rebuilt on the shadow CONCURRENTLY; constraints and validate:
    the column's CHECKs and foreign keys copied onto the shadow NOT VALID, then validated without
    a write lock, and NOT NULL as a validated CHECK; swap (manual gate, one short transaction):
    the shadow takes the column's name, its NOT NULL (instant, proven by the check) and its
    identity or sequence, the views that read the column are dropped and created again from their
    definitions (so that they read the shadow, of the new type), the old column keeps its values
    but no longer requires them; contract
    (after the rollback window): drop the old column, the copies take the original names.
    `carry` is what the catalog says hangs off the column (see render/carry.rs). -#}
-- Migration: change {{ table | ident }}.{{ column | ident }} to {{ new_type | sqltype }}
-- Rollback strategy: every step's down, in reverse; until the contract step the old column keeps every value written before the swap
-- drydock:step expand
-- drydock:up
ALTER TABLE {{ table | ident }} ADD COLUMN {{ shadow | ident }} {{ new_type | sqltype }};
{%- if carry.column.default %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ shadow | ident }} SET DEFAULT ({{ carry.column.default }})::{{ new_type | sqltype }};
{%- endif %}
{%- if carry.column.comment %}
COMMENT ON COLUMN {{ table | ident }}.{{ shadow | ident }} IS {{ carry.column.comment | literal }};
{%- endif %}
{% include "change-column-type-sync" %}
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
{%- include "carry-indexes-step" %}
{%- if carry.column.not_null or carry.constraints %}
-- drydock:step constraints
-- drydock:up
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} ADD CONSTRAINT {{ check | ident }} CHECK ({{ shadow | ident }} IS NOT NULL) NOT VALID;
{%- endif %}
{%- for c in carry.constraints %}
{{ c.create }};
{%- endfor %}
-- drydock:down
ALTER TABLE {{ table | ident }} DROP CONSTRAINT IF EXISTS {{ check | ident }};
{%- for c in carry.constraints %}
ALTER TABLE {{ table | ident }} DROP CONSTRAINT IF EXISTS {{ c.temp | ident }};
{%- endfor %}
-- drydock:step validate
-- drydock:up
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} VALIDATE CONSTRAINT {{ check | ident }};
{%- endif %}
{%- for c in carry.constraints %}{% if c.valid %}
ALTER TABLE {{ table | ident }} VALIDATE CONSTRAINT {{ c.temp | ident }};
{%- endif %}{% endfor %}
SELECT 1 -- every copied constraint validated without blocking writes
-- drydock:down
SELECT 1 -- the constraints step's down drops them, validated or not
{%- endif %}
-- drydock:step swap manual
-- drydock:up
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
{%- include "carry-views-drop" %}
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ column | ident }} TO {{ old | ident }};
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ shadow | ident }} TO {{ column | ident }};
{%- set repointed = false %}
{%- include "carry-views-create" %}
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ column | ident }} SET NOT NULL;
ALTER TABLE {{ table | ident }} DROP CONSTRAINT {{ check | ident }};
{%- endif %}
{%- set from = old %}{% set to = column %}
{% include "carry-sequence" %}
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ old | ident }} DROP NOT NULL;
{%- endif %}
-- drydock:down
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ old | ident }} SET NOT NULL;
{%- endif %}
{%- set from = column %}{% set to = old %}
{% include "carry-sequence" %}
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ column | ident }} DROP NOT NULL;
ALTER TABLE {{ table | ident }} ADD CONSTRAINT {{ check | ident }} CHECK ({{ column | ident }} IS NOT NULL);
{%- endif %}
{%- include "carry-views-drop" %}
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ column | ident }} TO {{ shadow | ident }};
ALTER TABLE {{ table | ident }} RENAME COLUMN {{ old | ident }} TO {{ column | ident }};
{%- set repointed = false %}
{%- include "carry-views-create" %}
CREATE TRIGGER {{ trigger | ident }} BEFORE INSERT OR UPDATE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
-- drydock:step contract after=rollback_window
-- drydock:up
{%- set dropped = old %}
{% include "carry-guard" %}
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} DROP COLUMN {{ old | ident }};
{%- include "carry-names" %}
-- drydock:down
{%- include "carry-names-back" %}
ALTER TABLE {{ table | ident }} ADD COLUMN {{ old | ident }} {{ carry.column.ty }};
{%- if carry.column.default %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ old | ident }} SET DEFAULT {{ carry.column.default }};
{%- endif %}
ALTER TABLE {{ table | ident }} DISABLE TRIGGER USER; -- values put back, not written: no last_update stamp, no audit row
UPDATE {{ table | ident }} SET {{ old | ident }} = {{ column | ident }}::{{ carry.column.ty }};
ALTER TABLE {{ table | ident }} ENABLE TRIGGER USER;
{%- set restored = old %}
{%- include "carry-restore" %}
{% include "change-column-type-sync" %}
{%- for i in carry.indexes %}
{{ i.restore }};
{%- endfor %}
