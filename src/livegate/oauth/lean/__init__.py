"""The lean token path: the token endpoint's grants and introspection in the fewest round
trips that keep their guarantees (reads.py: one read; issue.py: one write; server.py: Authlib
on those rows; service.py: which requests take it, and the ORM path for every other)."""
