{#- Adds a nullable column (with an optional default for existing and new rows); its down drops
    it again. Identifiers are validated and quoted, the default is bound as an escaped literal. -#}
-- Migration: add column {{ column | ident }} to {{ table | ident }}
-- Impact: one new column; existing rows read the default
-- Risk: low (no rewrite on PostgreSQL 11+ or SQLite when the default is a constant)
-- Rollback strategy: drop the column
-- drydock:step add-column
-- drydock:up
ALTER TABLE {{ table | ident }} ADD COLUMN {{ column | ident }} {{ type | sqltype }}{% if default is defined and default is not none %} DEFAULT {{ default | literal }}{% endif %};
-- drydock:down
ALTER TABLE {{ table | ident }} DROP COLUMN {{ column | ident }};
-- drydock:check column-readable rows:1
SELECT count({{ column | ident }}) FROM {{ table | ident }}
{%- if default is defined and default is not none %}
-- drydock:check default-filled true
SELECT count(*) = 0 FROM {{ table | ident }} WHERE {{ column | ident }} IS NULL
{%- endif %}
