{#- Moves rows from one table to another without a long transaction: keyset batches of
    INSERT … SELECT, each its own transaction with its checkpoint (exactly once across a kill);
    then, behind a manual gate (the application no longer reads those rows from the source),
    batched deletes from the source of the rows that were copied. Rollback puts the deleted rows
    back and deletes the copied ones, both saved batch by batch. -#}
-- Migration: move {{ columns | join(sep=", ") }} of {{ from_table | ident }}{% if filter %} where {{ filter | comment }}{% endif %} into {{ to_table | ident }}
-- Rollback strategy: drydock restores what each batch changed: the deleted rows go back into {{ from_table | ident }}, the copied rows are deleted from {{ to_table | ident }} (by {{ key | ident }})
-- drydock:step copy
-- drydock:backfill
{{ copy | json }}
{%- if delete %}
-- drydock:step delete-source manual
-- drydock:backfill
{{ delete | json }}
-- drydock:check source-emptied true
SELECT NOT EXISTS (SELECT 1 FROM {{ from_table | ident }} WHERE {{ where_sql }})
{%- else %}
-- drydock:check copied true
SELECT NOT EXISTS (SELECT 1 FROM {{ from_table | ident }} WHERE {{ where_sql }} AND NOT EXISTS (SELECT 1 FROM {{ to_table | ident }} AS dd_copy WHERE dd_copy.{{ key | ident }} = {{ from_table | ident }}.{{ key | ident }}))
{%- endif %}
