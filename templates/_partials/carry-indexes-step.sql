{#- The step that builds a copy of each of the column's indexes on its successor, CONCURRENTLY
    (a non-transactional step of its own); only when the column has indexes. -#}
{%- if carry.indexes %}
-- drydock:step indexes
-- drydock:up
{%- for i in carry.indexes %}
{{ i.create }};
{%- endfor %}
-- drydock:down
{%- for i in carry.indexes %}
DROP INDEX CONCURRENTLY IF EXISTS {{ i.temp | ident }};
{%- endfor %}
{%- endif %}