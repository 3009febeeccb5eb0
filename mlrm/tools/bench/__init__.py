"""`mlrm bench`: one workload on edge, fog and cloud deployments, measured the same way.

asset: records from a config set's inputs (the virtual asset); processes: the training child and a local
`mlrm serve`; procstat: CPU and memory from /proc; energy: codecarbon when installed; rest and mqtt: prediction
cycles as a client; run: one whole run; report: terminal table, JSON, HTML; cli: the command.
"""
