{#- Drops a table so that rollback gets it back whole: a manual gate while the application stops
    using it; then it is renamed aside into the `drydock` schema (a brief ACCESS EXCLUSIVE lock,
    retried under lock_timeout: its rows, indexes, constraints, triggers and sequences go with it
    untouched); only after the rollback window is it dropped. -#}
-- Migration: drop table {{ table | ident }}
-- Rollback strategy: until the rollback window passes, the aside step's down moves the table back under its name, with every row, index, constraint and trigger; the final step drops it
-- drydock:step aside manual
-- drydock:up
CREATE SCHEMA IF NOT EXISTS drydock;
ALTER TABLE {{ table | ident }} RENAME TO {{ aside | ident }};
ALTER TABLE {{ aside | ident }} SET SCHEMA drydock;
-- drydock:down
ALTER TABLE drydock.{{ aside | ident }} SET SCHEMA public;
ALTER TABLE {{ aside | ident }} RENAME TO {{ table | ident }};
-- drydock:step purge after=rollback_window
-- drydock:up
DROP TABLE drydock.{{ aside | ident }};
-- drydock:check table-gone true
SELECT to_regclass({{ table | ident | literal }}) IS NULL
