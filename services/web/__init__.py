"""`orgsync web`: the web console and the HTTP API (see docs/web.md)."""
