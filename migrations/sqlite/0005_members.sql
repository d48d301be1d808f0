-- A plan on a group rolls out member by member: each member's wave and state (pending,
-- applying, applied, failed, rolled-back) and the error that failed it. Written in the same
-- transaction as the audit row of the transition.

CREATE TABLE members (
    plan_id     TEXT NOT NULL REFERENCES plans (id),
    target      TEXT NOT NULL,
    position    INTEGER NOT NULL,
    wave        INTEGER NOT NULL,
    state       TEXT NOT NULL,
    error       TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (plan_id, target)
);
