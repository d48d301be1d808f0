{#- Moves the column's identity, or the ownership of its sequence (serial), from `from` to `to`:
    the identity continues where the old one stopped. -#}
{%- if carry.column.identity %}
DO $drydock$
DECLARE next bigint;
BEGIN
    SELECT coalesce(pg_sequence_last_value(s.seqrelid) + s.seqincrement, s.seqstart) INTO next
    FROM pg_sequence s WHERE s.seqrelid = pg_get_serial_sequence({{ table | ident | literal }}, {{ from | literal }})::regclass;
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP IDENTITY', {{ table | literal }}, {{ from | literal }});
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I ADD GENERATED {{ carry.column.identity }} AS IDENTITY (START WITH %s)', {{ table | literal }}, {{ to | literal }}, next);
END
$drydock$;
{%- elif carry.column.sequence %}
DO $drydock$ BEGIN
    EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I', pg_get_serial_sequence({{ table | ident | literal }}, {{ from | literal }}), {{ table | literal }}, {{ to | literal }});
END
$drydock$;
{%- endif %}
