-- Filing an issue without holding a transaction across Linear calls (capability C4).
-- content_version counts changes to what an issue renders from (entries, labels, priority); applied_version is the
-- content_version Linear was last brought up to. A writer records its result only when its version is still the
-- newest (compare-and-set), so a late, older write never marks newer entries filed.
-- writer/writer_until is a lease, not a lock: the one activity attempt allowed to write the issue in Linear, until
-- that attempt's deadline. Others leave their entries to it; no transaction is open while it talks to Linear.
ALTER TABLE filed_issues
    ADD COLUMN content_version  bigint NOT NULL DEFAULT 0,
    ADD COLUMN applied_version  bigint NOT NULL DEFAULT 0,
    ADD COLUMN writer           text NOT NULL DEFAULT '',
    ADD COLUMN writer_until     timestamptz;
