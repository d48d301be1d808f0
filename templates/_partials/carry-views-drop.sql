{#- The views that read the moved column are dropped, those reading them first. -#}
{%- for v in carry.views | reverse %}
DROP VIEW {{ v.name }};
{%- endfor %}