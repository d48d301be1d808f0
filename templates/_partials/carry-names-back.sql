{#- The copies go back to their temporary names, freeing the originals' names for the restore. -#}
{%- for i in carry.indexes %}
ALTER INDEX {{ i.name | ident }} RENAME TO {{ i.temp | ident }};
{%- endfor %}
{%- for c in carry.constraints %}
ALTER TABLE {{ table | ident }} RENAME CONSTRAINT {{ c.name | ident }} TO {{ c.temp | ident }};
{%- endfor %}
