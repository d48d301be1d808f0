{#- SQLite only: the table rebuilt to a new definition, for what SQLite's ALTER TABLE cannot
    change in place (types, NOT NULL, defaults, CHECKs, keys, collations, column order). drydock
    renders it from the target's catalog (src/render/rebuild.rs), in one step, one BEGIN
    IMMEDIATE transaction with foreign keys off and foreign_key_check before it commits:
      CREATE TABLE _drydock_rebuild_<table> <definition from its column list on>;
      INSERT INTO _drydock_rebuild_<table> (<every column>) SELECT <every column> FROM <table>;
      DROP VIEW <each view that reads it>;
      DROP TABLE <table>;
      ALTER TABLE _drydock_rebuild_<table> RENAME TO <table>;
      <its indexes, triggers and views, as the database stored them>;
    The down is the same procedure back to the original definition, verbatim.
    On PostgreSQL a table changes in place: add-not-null-column, change-column-type,
    add-check-constraint, add-foreign-key. -#}
