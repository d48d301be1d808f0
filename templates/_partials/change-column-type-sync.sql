{#- The function that computes the shadow column from each written row (the trigger on it is
    created where it is needed). -#}
CREATE FUNCTION {{ function | ident }}() RETURNS trigger LANGUAGE plpgsql AS $drydock$
BEGIN
    NEW.{{ shadow | ident }} := (SELECT ({{ using }})::{{ new_type | sqltype }} FROM (SELECT NEW.*) AS src);
    RETURN NEW;
END
$drydock$;
