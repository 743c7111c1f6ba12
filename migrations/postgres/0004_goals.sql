-- Conversion goals of a project: a custom event name or a page path pattern (`*` within a segment, `**` across
-- segments), named by a display name that answers use as the `event:goal` value.
CREATE TABLE goals (
    id           bigserial PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    event_name   text CHECK (event_name IS NULL OR length(event_name) BETWEEN 1 AND 120),
    page_path    text CHECK (page_path IS NULL OR (length(page_path) BETWEEN 1 AND 2000 AND page_path LIKE '/%')),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 120),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Exactly one of the two kinds.
    CHECK ((event_name IS NULL) <> (page_path IS NULL)),
    UNIQUE (project_id, display_name)
);
CREATE INDEX goals_project_idx ON goals (project_id);
