-- Reserved for questions; replaced by the migration of that capability.
SELECT 1;
