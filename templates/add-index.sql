{#- Builds an index without blocking writes: CONCURRENTLY, alone in its step (outside a
    transaction); a failed build's invalid index is dropped by drydock. -#}
-- Migration: index {{ table | ident }} ({{ columns_sql }})
-- drydock:step add-index
-- drydock:up
CREATE {% if unique %}UNIQUE {% endif %}INDEX CONCURRENTLY {{ name | ident }} ON {{ table | ident }} ({{ columns_sql }});
-- drydock:down
DROP INDEX CONCURRENTLY IF EXISTS {{ name | ident }};
-- drydock:check index-valid true
SELECT count(*) = 1 FROM pg_index WHERE indexrelid = to_regclass({{ name | ident | literal }}) AND indisvalid
