{#- Moves rows from one table to another without a long transaction: a trigger keeping the
    copies in step with the application's updates and deletes of the rows; keyset batches of
    INSERT … SELECT, each its own REPEATABLE READ transaction with its checkpoint that locks
    the rows it copies (exactly once across a kill, never a row as it was before a writer's
    change); then, behind a manual gate (the application no longer uses those rows in the
    source), the trigger dropped and the source's rows deleted in batches — only rows still
    equal to their copy. Rollback puts the deleted rows back and deletes the copied ones, both
    saved batch by batch. -#}
-- Migration: move {{ columns | join(sep=", ") }} of {{ from_table | ident }}{% if filter %} where {{ filter | comment }}{% endif %} into {{ to_table | ident }}
-- Rollback strategy: drydock restores what each batch changed: the deleted rows go back into {{ from_table | ident }}, the copied rows are deleted from {{ to_table | ident }} (by {{ key | ident }})
-- drydock:step sync
-- drydock:up
{% include "move-data-sync" %}
-- drydock:down
{% include "move-data-unsync" %}
-- drydock:step copy
-- drydock:backfill
{{ copy | json }}
-- drydock:step {% if delete %}switched manual{% else %}unsync{% endif %}
-- drydock:up
{% include "move-data-unsync" %}
-- drydock:down
{% include "move-data-sync" %}
{%- if delete %}
-- drydock:step delete-source
-- drydock:backfill
{{ delete | json }}
-- drydock:check source-emptied true
SELECT NOT EXISTS (SELECT 1 FROM {{ from_table | ident }} WHERE {{ where_sql }})
{%- else %}
-- drydock:check copied true
SELECT NOT EXISTS (SELECT 1 FROM {{ from_table | ident }} WHERE {{ where_sql }} AND NOT EXISTS (SELECT 1 FROM {{ to_table | ident }} AS dd_copy WHERE dd_copy.{{ key | ident }} = {{ from_table | ident }}.{{ key | ident }}))
{%- endif %}
