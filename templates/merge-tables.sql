{#- Merges columns of one table into another, column-wise on a key both have (expand/contract):
    the columns added to the table (nullable), and a trigger on the other table copying every
    insert, update and delete of them across, and one on the table filling a row inserted after
    its pair (a pair whose two rows two transactions insert at the same instant is the one case
    neither trigger sees); a batched update filling the existing rows, each batch REPEATABLE
    READ so that it never writes a value older than the trigger's; a
    manual gate while the application moves to the merged columns; after the rollback window,
    the final step drops the trigger and the merged-away table. -#}
-- Migration: merge {{ columns | join(sep=", ") }} of {{ from_table | ident }} into {{ table | ident }} on {{ key | ident }}
-- Rollback strategy: until the contract step runs, every step's down: the filled values are put back (NULL), the trigger, its function and the added columns dropped; the contract (final) runs after the rollback window
-- drydock:step expand
-- drydock:up
ALTER TABLE {{ table | ident }} {% for c in moved %}{% if not loop.first %}, {% endif %}ADD COLUMN {{ c.name | ident }} {{ c.ty }}{% endfor %};
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE {{ table | ident }} SET {% for c in moved %}{% if not loop.first %}, {% endif %}{{ c.name | ident }} = NULL{% endfor %} WHERE {{ key | ident }} = OLD.{{ key | ident }};
        RETURN OLD;
    END IF;
    UPDATE {{ table | ident }} SET {% for c in moved %}{% if not loop.first %}, {% endif %}{{ c.name | ident }} = NEW.{{ c.name | ident }}{% endfor %} WHERE {{ key | ident }} = NEW.{{ key | ident }};
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} AFTER INSERT OR UPDATE OR DELETE ON {{ from_table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
CREATE FUNCTION {{ fill_function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF {% for c in moved %}NEW.{{ c.name | ident }} IS NULL AND {% endfor %}true THEN
        SELECT {% for c in moved %}{% if not loop.first %}, {% endif %}{{ c.name | ident }}{% endfor %} INTO {% for c in moved %}{% if not loop.first %}, {% endif %}NEW.{{ c.name | ident }}{% endfor %} FROM {{ from_table | ident }} WHERE {{ key | ident }} = NEW.{{ key | ident }};
    END IF;
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ fill_trigger | ident }} BEFORE INSERT ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ fill_function | ident }}();
-- drydock:down
DROP TRIGGER {{ fill_trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ fill_function | ident }}();
DROP TRIGGER {{ trigger | ident }} ON {{ from_table | ident }};
DROP FUNCTION {{ function | ident }}();
ALTER TABLE {{ table | ident }} {% for c in moved %}{% if not loop.first %}, {% endif %}DROP COLUMN {{ c.name | ident }}{% endfor %};
-- drydock:step copy
-- drydock:backfill
{{ fill | json }}
-- drydock:step switched manual
-- drydock:up
SELECT 1 -- from here on the application reads and writes {{ columns | join(sep=", ") }} in {{ table | ident }}
-- drydock:down
SELECT 1 -- nothing to undo: the gate is for the application
-- drydock:step contract after=rollback_window
-- drydock:up
DROP TRIGGER {{ fill_trigger | ident }} ON {{ table | ident }};
DROP FUNCTION {{ fill_function | ident }}();
DROP TRIGGER {{ trigger | ident }} ON {{ from_table | ident }};
DROP FUNCTION {{ function | ident }}();
DROP TABLE {{ from_table | ident }};
-- drydock:check merged true
SELECT to_regclass({{ from_table | ident | literal }}) IS NULL AND (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = {{ table | literal }} AND column_name IN ({% for c in moved %}{% if not loop.first %}, {% endif %}{{ c.name | literal }}{% endfor %})) = {{ moved | length }}
