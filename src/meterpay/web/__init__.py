"""HTTP entry points: the REST API (and later the console and the portal)."""
