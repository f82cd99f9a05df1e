"""Read models: what the read commands, the console and the API show, as JSON-ready rows."""
