{#- The general skeleton an agent fills for a custom change: document the goal, impact, risk
    and rollback strategy, then give up, down and validation queries. -#}
-- Migration: {{ goal | comment }}
-- Impact: {{ impact | comment }}
-- Risk: {{ risk | comment }}
-- Rollback strategy: {{ rollback_strategy | comment }}
-- drydock:step {{ step_name | ident_bare }}
-- drydock:up
{{ up }}
-- drydock:down
{{ down }}
{%- for c in checks %}
-- drydock:check {{ c.name | ident_bare }} {{ c.expect | expect }}
{{ c.sql }}
{%- endfor %}
