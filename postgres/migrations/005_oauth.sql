-- Reserved for oauth; replaced by the migration of that capability.
SELECT 1;
