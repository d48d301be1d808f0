{#- Before the old column `column` is dropped: nothing may hang off it that the plan did not carry
    (an index or constraint created after the plan was made would be dropped with the column). -#}
DO $drydock$
DECLARE extra text;
BEGIN
    SELECT string_agg(pg_describe_object(d.classid, d.objid, 0), ', ') INTO extra
    FROM pg_depend d
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = {{ table | ident | literal }}::regclass
      AND d.refobjsubid = (SELECT attnum FROM pg_attribute WHERE attrelid = {{ table | ident | literal }}::regclass AND attname = {{ dropped | literal }})
      AND d.deptype IN ('n', 'a')
      AND d.classid <> 'pg_attrdef'::regclass
      AND NOT (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT c.oid FROM pg_class c
          WHERE c.relkind = 'S' OR c.relname = ANY (ARRAY[NULL{% for i in carry.indexes %}, {{ i.name | literal }}{% endfor %}]::text[])))
      AND NOT (d.classid = 'pg_constraint'::regclass AND d.objid IN (SELECT co.oid FROM pg_constraint co
          WHERE co.conrelid = {{ table | ident | literal }}::regclass
            AND (co.contype = 'n' OR co.conname = ANY (ARRAY[NULL{% for c in carry.constraints %}, {{ c.name | literal }}{% endfor %}]::text[]))));
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'drydock: % depend on %.% and were not there when this plan was made; make a new plan', extra, {{ table | literal }}, {{ dropped | literal }};
    END IF;
END
$drydock$;
