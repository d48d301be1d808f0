-- State shared by several servers. A lease names the one server applying (or rolling back) a
-- plan; it lives while its holder heartbeats and is taken over once it expires (the holder
-- crashed). Times are milliseconds since the epoch on the state store's clock, so servers on
-- machines whose clocks disagree still agree on expiry.

CREATE TABLE leases (
    plan_id      TEXT PRIMARY KEY REFERENCES plans (id),
    holder       TEXT NOT NULL,
    principal    TEXT NOT NULL,
    action       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    progress     TEXT
);

-- Agents' mistakes, once each (same code and lesson), counted across every server; ERRORS.md
-- in each repository is written from here by `drydock errors sync`.
CREATE TABLE mistakes (
    key        TEXT PRIMARY KEY,
    code       TEXT NOT NULL,
    lesson     TEXT NOT NULL,
    what       TEXT NOT NULL,
    agent      TEXT NOT NULL,
    tool       TEXT NOT NULL,
    plan_id    TEXT,
    target     TEXT,
    tables     TEXT NOT NULL,
    count      BIGINT NOT NULL,
    first_at   TEXT NOT NULL,
    last_at    TEXT NOT NULL
);
