{#- Builds an index without blocking writes: CONCURRENTLY, alone in its step (outside a
    transaction); a failed build's invalid index is dropped by drydock. PostgreSQL refuses
    CONCURRENTLY on a partitioned table: there each partition's index is built concurrently,
    then the parent's is made ON ONLY the parent (invalid, instant) and each partition's is
    attached to it in one short transaction, which makes it valid. Partitions created later
    get the index from the parent. -#}
-- Migration: index {{ table | ident }} ({{ columns_sql }})
{%- if partitions %}
-- Rollback strategy: the attach step's down drops the parent's index, and with it every
-- partition's attached to it; the build step's down drops any left
-- drydock:step build
-- drydock:up
{%- for p in partitions %}
CREATE {% if unique %}UNIQUE {% endif %}INDEX CONCURRENTLY {{ p.name | ident }} ON {{ p.table | ident }} ({{ columns_sql }});
{%- endfor %}
-- drydock:down
{%- for p in partitions %}
DROP INDEX CONCURRENTLY IF EXISTS {{ p.name | ident }};
{%- endfor %}
-- drydock:step attach
-- drydock:up
CREATE {% if unique %}UNIQUE {% endif %}INDEX {{ name | ident }} ON ONLY {{ table | ident }} ({{ columns_sql }});
{%- for p in partitions %}
ALTER INDEX {{ name | ident }} ATTACH PARTITION {{ p.name | ident }};
{%- endfor %}
-- drydock:down
DROP INDEX {{ name | ident }};
{%- else %}
-- drydock:step add-index
-- drydock:up
CREATE {% if unique %}UNIQUE {% endif %}INDEX CONCURRENTLY {{ name | ident }} ON {{ table | ident }} ({{ columns_sql }});
-- drydock:down
DROP INDEX CONCURRENTLY IF EXISTS {{ name | ident }};
{%- endif %}
-- drydock:check index-valid true
SELECT count(*) = 1 FROM pg_index WHERE indexrelid = to_regclass({{ name | ident | literal }}) AND indisvalid
