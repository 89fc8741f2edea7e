-- Reserved for events; replaced by the migration of that capability.
SELECT 1;
