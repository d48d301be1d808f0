{#- Drops an index without blocking writes: DROP INDEX CONCURRENTLY, alone in its step (outside a
    transaction). The index's definition, read from the catalog when the plan was made, is the
    `down`: CREATE INDEX CONCURRENTLY rebuilds it as it was. -#}
-- Migration: drop index {{ name | ident }} on {{ table | ident }}
-- Rollback strategy: the down rebuilds the index CONCURRENTLY from its definition, saved in this plan: {{ definition | comment }}
-- drydock:step drop-index
-- drydock:up
DROP INDEX CONCURRENTLY {{ name | ident }};
-- drydock:down
{{ create }};
-- drydock:check index-gone true
SELECT to_regclass({{ name | ident | literal }}) IS NULL
