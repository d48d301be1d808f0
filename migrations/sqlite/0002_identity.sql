-- Identities: bearer tokens for principals (agent, approver, admin). Only a token's id and the
-- SHA-256 of its secret are kept. Audit rows name the principal's role, the channel it came by
-- and the operating-system user of the acting process.

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX tokens_name ON tokens (name);

ALTER TABLE audit ADD COLUMN role TEXT;
ALTER TABLE audit ADD COLUMN via TEXT;
ALTER TABLE audit ADD COLUMN os_user TEXT;
