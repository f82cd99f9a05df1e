"""`orgsync web`: the web console and the HTTP API (see README.md, "Web console")."""
