-- Passphrases of the people who decide (approvers, admins), asked at a terminal without echo for
-- local approvals, releases, waivers and token management: set by that person, kept only as an
-- argon2id hash (a PHC string with its own random salt).
CREATE TABLE passphrases (
    name    TEXT PRIMARY KEY,
    role    TEXT NOT NULL,
    hash    TEXT NOT NULL,
    set_at  TEXT NOT NULL,
    set_by  TEXT NOT NULL
);
