{#- The trigger that keeps a renamed column and its successor equal while both exist. -#}
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.{{ new_name | ident }} IS NULL THEN NEW.{{ new_name | ident }} := NEW.{{ column | ident }}; ELSE NEW.{{ column | ident }} := NEW.{{ new_name | ident }}; END IF;
    ELSIF NEW.{{ new_name | ident }} IS DISTINCT FROM OLD.{{ new_name | ident }} THEN
        NEW.{{ column | ident }} := NEW.{{ new_name | ident }};
    ELSE
        NEW.{{ new_name | ident }} := NEW.{{ column | ident }};
    END IF;
    RETURN NEW;
END
$drydock$;
CREATE TRIGGER {{ trigger | ident }} BEFORE INSERT OR UPDATE ON {{ table | ident }} FOR EACH ROW EXECUTE FUNCTION {{ function | ident }}();
