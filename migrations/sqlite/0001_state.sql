-- drydock's own state: plans are immutable (their body and checksum never change); every
-- lifecycle transition writes the plan's status, its runs, step states and audit rows in one
-- transaction.

CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    checksum    TEXT NOT NULL,
    goal        TEXT NOT NULL,
    target      TEXT NOT NULL,
    author      TEXT NOT NULL,
    urgency     TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    supersedes  TEXT REFERENCES plans (id),
    body        TEXT NOT NULL,
    analysis    TEXT NOT NULL
);
CREATE INDEX plans_target ON plans (target, created_at);

CREATE TABLE steps (
    plan_id      TEXT NOT NULL REFERENCES plans (id),
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    applied_at   TEXT,
    released_by  TEXT,
    released_at  TEXT,
    PRIMARY KEY (plan_id, idx)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    plan_id      TEXT NOT NULL REFERENCES plans (id),
    checksum     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    target       TEXT NOT NULL,
    ok           INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    duration_ms  REAL NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX runs_plan ON runs (plan_id, id);

CREATE TABLE approvals (
    id        INTEGER PRIMARY KEY,
    plan_id   TEXT NOT NULL REFERENCES plans (id),
    checksum  TEXT NOT NULL,
    by        TEXT NOT NULL,
    decision  TEXT NOT NULL,
    reason    TEXT,
    at        TEXT NOT NULL
);
CREATE INDEX approvals_plan ON approvals (plan_id);

CREATE TABLE backups (
    id        INTEGER PRIMARY KEY,
    target    TEXT NOT NULL,
    plan_id   TEXT,
    verified  INTEGER NOT NULL,
    detail    TEXT NOT NULL,
    taken_at  TEXT NOT NULL
);
CREATE INDEX backups_target ON backups (target, taken_at);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    plan_id  TEXT,
    detail   TEXT NOT NULL
);
