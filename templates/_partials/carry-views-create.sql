{#- The views dropped by carry-views-drop, created again in order with their comments and
    grants: reading the successor under its own name when `repointed`, else as they were. -#}
{%- for v in carry.views %}
{% if repointed %}{{ v.renamed }}{% else %}{{ v.create }}{% endif %};
{%- for a in v.after %}
{{ a }};
{%- endfor %}
{%- endfor %}