"""`tracker serve`: the HTTP intake and read API (issue 10; docs/access.md)."""
