{#- Drops a column so that rollback gets it back with its data: held by a manual gate until the
    application no longer reads or writes it; then, in one transaction, the column's values are
    copied aside (keyed by the primary key, into the `drydock` schema) and the column dropped;
    after the rollback window the copy is dropped too. `down` re-adds the column with its type,
    default, NOT NULL, comment, constraints and indexes (from the catalog, `carry`) and puts every
    value back; a rollback puts them back in short batches first (`-- drydock:restore`), so the
    application waits for one batch, not for the whole table under the `down`'s lock. -#}
-- Migration: drop {{ table | ident }}.{{ column | ident }}
-- Rollback strategy: until the rollback window passes, the drop step's down re-adds the column with its default, NOT NULL, comment, constraints and indexes and restores its values from drydock.{{ aside | ident }}; the final step drops that copy
-- drydock:step drop manual
-- drydock:up
-- Released once the application neither reads nor writes {{ table | ident }}.{{ column | ident }}.
{%- set dropped = column %}
{% include "carry-guard" %}
CREATE SCHEMA IF NOT EXISTS drydock;
CREATE TABLE drydock.{{ aside | ident }} AS SELECT {% for k in keys %}{{ k | ident }}, {% endfor %}{{ column | ident }} FROM {{ table | ident }};
ALTER TABLE {{ table | ident }} DROP COLUMN {{ column | ident }};
-- drydock:down
-- The column comes back with its default (rows inserted while it was gone take it); a
-- rollback may have brought it back already and put values back in batches (the restore below).
{{ prepare }};
-- The values are put back, not written: the table's own triggers (a last_update stamp, an
-- audit log) stay off while they are (the step already holds the table's lock).
ALTER TABLE {{ table | ident }} DISABLE TRIGGER USER;
UPDATE {{ table | ident }} AS dd_row SET {{ column | ident }} = dd_aside.{{ column | ident }} FROM drydock.{{ aside | ident }} AS dd_aside
WHERE {% for k in keys %}{% if not loop.first %} AND {% endif %}dd_row.{{ k | ident }} = dd_aside.{{ k | ident }}{% endfor %};
ALTER TABLE {{ table | ident }} ENABLE TRIGGER USER;
{%- if carry.column.not_null %}
ALTER TABLE {{ table | ident }} ALTER COLUMN {{ column | ident }} SET NOT NULL;
{%- endif %}
{%- set restored = column %}
{%- include "carry-restore" %}
DROP TABLE drydock.{{ aside | ident }};
{%- for i in carry.indexes %}
{{ i.restore }};
{%- endfor %}
{%- if restore %}
-- drydock:restore
{{ restore | json }}
{%- endif %}
-- drydock:step purge after=rollback_window
-- drydock:up
DROP TABLE drydock.{{ aside | ident }};
-- drydock:check column-gone true
SELECT count(*) = 0 FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ column | literal }} AND NOT attisdropped
