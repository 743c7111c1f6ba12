-- Deleting a project: `deleted_at` (0001) makes the hub refuse its tokens and the API forget it at once; its
-- ClickHouse rows are removed by `ALTER TABLE ... DELETE` mutations issued by the app. `purged_at` records the
-- last pass that issued them all. A project with `deleted_at` set and `purged_at` still NULL is a pending purge:
-- the app retries it (ClickHouse was down, or events queued before the deletion may still be written), see
-- app/src/purge.rs.
ALTER TABLE projects ADD COLUMN purged_at timestamptz;
CREATE INDEX projects_pending_purge_idx ON projects (deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
