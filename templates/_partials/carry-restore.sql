{#- The old column's comment and constraints come back as they were (indexes are rebuilt
    CONCURRENTLY at the end of the step, outside its transaction). -#}
{%- if carry.column.comment %}
COMMENT ON COLUMN {{ table | ident }}.{{ restored | ident }} IS {{ carry.column.comment | literal }};
{%- endif %}
{%- for c in carry.constraints %}
{{ c.restore }};
{%- if c.valid %}
ALTER TABLE {{ table | ident }} VALIDATE CONSTRAINT {{ c.name | ident }};
{%- endif %}
{%- endfor %}
