{#- A batched data change: keyset batches, each its own transaction with its checkpoint. -#}
-- Migration: backfill {{ table | ident }}
-- Rollback strategy: data changes are not undone; keep the old values elsewhere if you need them
-- drydock:step backfill
-- drydock:backfill
{{ backfill | json }}
-- drydock:down
SELECT 1 -- a backfill changes data, not schema: there is nothing to drop
