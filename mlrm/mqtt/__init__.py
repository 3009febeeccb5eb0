"""MQTT transport: predictions and training samples over a broker, nothing lost offline.

Pieces, each usable alone (the training service reuses client, outbox and samples):

- topics: topic templates ({service}, {device}-style kept levels);
- settings: the `mqtt` section of service.yaml (checks, secrets, per-role view);
- predict: transport-free handler, payload bytes -> messages to publish;
- samples: transport-free handler for labelled samples, handed to a durable sink;
- scoring: transport-free handler that scores kept predictions by the ids of those samples (read only);
- outbox: durable, bounded, ordered SQLite queue of messages to publish;
- client: paho-mqtt wrapper (reconnect, re-subscribe, manual ack, outbox drain);
- telemetry/status: counters, Prometheus metrics and the status file REST reads;
- bridge/supervisor: the ML service's MQTT process beside `mlrm serve`.

Importing this package imports nothing heavy: REST reads the status file
through mlrm.storage.bridge_status without loading paho.
"""
