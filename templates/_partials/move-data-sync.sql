{#- The trigger that keeps the copies in step while the rows are copied: an update of a row
    that matches `where` is written onto its copy, a delete deletes its copy (a row not copied
    yet has no copy to touch: the batch copies it as it then is). On SQLite, two triggers (one
    per event) whose WHEN reads the old row the same way. -#}
{%- if sqlite %}
CREATE TRIGGER {{ trigger | ident }} AFTER UPDATE ON {{ from_table | ident }} FOR EACH ROW
WHEN EXISTS (SELECT 1 FROM (SELECT {% for c in source_columns %}{% if not loop.first %}, {% endif %}OLD.{{ c | ident }} AS {{ c | ident }}{% endfor %}) AS {{ from_table | ident }} WHERE {{ where_sql }})
BEGIN
    UPDATE {{ to_table | ident }} SET ({% for c in columns %}{% if not loop.first %}, {% endif %}{{ c | ident }}{% endfor %}) = ({% for c in columns %}{% if not loop.first %}, {% endif %}NEW.{{ c | ident }}{% endfor %}) WHERE {{ key | ident }} = OLD.{{ key | ident }};
END;
CREATE TRIGGER {{ delete_trigger | ident }} AFTER DELETE ON {{ from_table | ident }} FOR EACH ROW
WHEN EXISTS (SELECT 1 FROM (SELECT {% for c in source_columns %}{% if not loop.first %}, {% endif %}OLD.{{ c | ident }} AS {{ c | ident }}{% endfor %}) AS {{ from_table | ident }} WHERE {{ where_sql }})
BEGIN
    DELETE FROM {{ to_table | ident }} WHERE {{ key | ident }} = OLD.{{ key | ident }};
END;
{%- else %}
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT OLD.*) AS {{ from_table | ident }} WHERE {{ where_sql }}) THEN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM {{ to_table | ident }} WHERE {{ key | ident }} = OLD.{{ key | ident }};
            RETURN OLD;
        END IF;
        UPDATE {{ to_table | ident }} SET ({% for c in columns %}{% if not loop.first %}, {% endif %}{{ c | ident }}{% endfor %}) = (SELECT {% for c in columns %}{% if not loop.first %}, {% endif %}NEW.{{ c | ident }}{% endfor %}) WHERE {{ key | ident }} = OLD.{{ key | ident }};
    END IF;
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} AFTER UPDATE OR DELETE ON {{ from_table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
{%- endif %}
