"""Writes of the registry, split by sub-domain: registry (intake), review (workflow),
imports (bulk lists)."""
