"""The mlrm training service: consumers post labelled samples; it stores them
durably, retrains when a trigger fires, gates the candidate and writes the
new learned state back into the config set, where running ML services pick
it up live.

Layout: `store` (durable samples and jobs), `ingest` (validate and commit
samples), `triggers` and `gate` (pure decisions), `jobs` (one training run, in
its own process), `scheduler` (the one process that starts jobs), `core` (the
transport-free service), `api` (thin Flask layer), `cli` and `client`.
"""
