{#- Splits columns off a table into a new one keyed by the table's key (expand/contract): the new
    table, and a trigger keeping it in step with every insert, update and delete of the table;
    a batched copy of the existing rows (rows the trigger wrote first are kept); a manual gate
    while the application moves its reads and writes of those columns to the new table (writing
    it with upserts on the key); after the rollback window, the final step drops the trigger
    and the columns from the table. -#}
-- Migration: split {{ columns | join(sep=", ") }} of {{ table | ident }} into {{ new_table | ident }} keyed by {{ key | ident }}
-- Rollback strategy: until the contract step runs, every step's down: the copied rows are deleted, the trigger, its function and the new table dropped; the contract (final) runs after the rollback window
-- drydock:step expand
-- drydock:up
CREATE TABLE {{ new_table | ident }} ({{ key | ident }} {{ key_type }} PRIMARY KEY{% for c in moved %}, {{ c.name | ident }} {{ c.ty }}{% if c.not_null %} NOT NULL{% endif %}{% endfor %});
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM {{ new_table | ident }} WHERE {{ key | ident }} = OLD.{{ key | ident }};
        RETURN OLD;
    END IF;
    INSERT INTO {{ new_table | ident }} ({{ key | ident }}{% for c in moved %}, {{ c.name | ident }}{% endfor %})
    VALUES (NEW.{{ key | ident }}{% for c in moved %}, NEW.{{ c.name | ident }}{% endfor %})
    ON CONFLICT ({{ key | ident }}) DO UPDATE SET {% for c in moved %}{% if not loop.first %}, {% endif %}{{ c.name | ident }} = EXCLUDED.{{ c.name | ident }}{% endfor %};
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} AFTER INSERT OR UPDATE OR DELETE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
-- drydock:down
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
DROP TABLE {{ new_table | ident }};
-- drydock:step copy
-- drydock:backfill
{{ copy | json }}
-- drydock:step switched manual
-- drydock:up
SELECT 1 -- from here on the application reads and writes {{ columns | join(sep=", ") }} in {{ new_table | ident }}
-- drydock:down
SELECT 1 -- nothing to undo: the gate is for the application
-- drydock:step contract after=rollback_window
-- drydock:up
DROP TRIGGER {{ trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} {% for c in moved %}{% if not loop.first %}, {% endif %}DROP COLUMN {{ c.name | ident }}{% endfor %};
-- drydock:check split true
SELECT to_regclass({{ new_table | ident | literal }}) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = {{ table | literal }} AND column_name IN ({% for c in moved %}{% if not loop.first %}, {% endif %}{{ c.name | literal }}{% endfor %}))
