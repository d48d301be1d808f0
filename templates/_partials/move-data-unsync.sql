{#- Drops what `move-data-sync` created. -#}
DROP TRIGGER {{ trigger | ident }}{% if sqlite %};
DROP TRIGGER {{ delete_trigger | ident }};{% else %} ON {{ from_table | ident }};
DROP FUNCTION {{ function | ident }}();{% endif %}
