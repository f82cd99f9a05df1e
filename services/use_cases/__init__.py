"""Use cases: what a person asks of orgsync through the CLI, the console or the API."""
