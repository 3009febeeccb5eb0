"""Tools for people: data generators (datasets, simulation) and `mlrm init` (scaffold)."""
