"""orgsync, installed under this one name: `orgsync.services` (workers, CLI, web console),
`orgsync.pipelines` (the stage functions) and `orgsync.schema` (migrations and JSON Schemas).

In the repository they live at the top level (`services/`, `pipelines/`, `schema/`); the
entries here are symbolic links to them, so that the checkout, an editable install, mypy and
the wheel all see the same module names and nothing claims a generic top-level name.
"""
