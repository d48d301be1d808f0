{#- The copies on the successor take the original names (the originals went with the old column). -#}
{%- for i in carry.indexes %}
ALTER INDEX {{ i.temp | ident }} RENAME TO {{ i.name | ident }};
{%- endfor %}
{%- for c in carry.constraints %}
ALTER TABLE {{ table | ident }} RENAME CONSTRAINT {{ c.temp | ident }} TO {{ c.name | ident }};
{%- endfor %}
