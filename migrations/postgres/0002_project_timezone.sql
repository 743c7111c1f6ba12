-- The IANA time zone whose midnights start a project's days in every answer (day, week and month boundaries).
-- The app accepts only names PostgreSQL knows (pg_timezone_names), which ClickHouse's toTimeZone knows too.
ALTER TABLE projects ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
