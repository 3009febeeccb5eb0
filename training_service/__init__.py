"""The mlrm training service: consumers post labelled samples; it stores them
durably, retrains when a trigger fires, gates the candidate and writes the
new learned state back into the config set, where running ML services pick
it up live.

Layout: `store` (the Store interface; `sqlite_store` the embedded one),
`ingest` (validate a posted batch), `triggers`, `gate` and `holdout` (pure
decisions), `jobs` (one training run, in its own process), `scheduler` (the
one process that starts jobs), `services` (the config sets under the root),
`settings`, `core` (the transport-free service), `api` (thin Flask layer),
`cli` and `client`.
"""
