-- Placeholder for migration 016, which another branch (notifications) holds: it keeps this branch's numbering
-- contiguous until that branch lands. Delete this file when merging 016_notifications.sql.
SELECT 1;
