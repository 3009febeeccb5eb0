"""A durable, bounded, ordered queue of messages to publish: one SQLite file (WAL).

Every message mlrm publishes is committed here first and removed only after
the broker acknowledged it (PUBACK for QoS 1), so a message survives a broker
outage and a crash or kill of mlrm, and is sent in order once the broker is
back. Delivery is at least once: a message acknowledged by the broker just
before a crash is sent again after the restart (answers carry the input's
id, so receivers can tell).

The bound (max_messages) protects the disk on a long outage: `drop_oldest`
makes room by deleting the oldest waiting messages, `reject_new` refuses the
new ones (OutboxFull). Both are counted (`dropped`). One process owns a file
(flock), so two services cannot send each other's messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlrm.errors import MlrmError
from mlrm.storage.sqlite import FileLock, connect, lock_path, transaction, try_lock

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: never reused, so seq is send order
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes


class OutboxFull(MlrmError):
    """The outbox holds max_messages and on_full is reject_new."""


class OutboxLocked(MlrmError):
    """Another process owns this outbox file."""


@dataclass(frozen=True)
class Queued:
    """A stored message waiting to be published."""

    seq: int
    topic: str
    payload: bytes
    qos: int


class MqttOutbox:
    """The outbox file at path (created if absent). Thread-safe."""

    def __init__(
        self, path: str | Path, *, max_messages: int = 10000, on_full: str = "drop_oldest", synchronous: str = "full"
    ) -> None:
        if on_full not in ("drop_oldest", "reject_new"):
            raise ValueError(f"on_full must be drop_oldest or reject_new, not {on_full!r}")
        self.path = Path(path)
        self.max_messages, self.on_full = max_messages, on_full
        self._owner = self._take_lock()
        self._lock = threading.Lock()
        # The level is the user's (mqtt.outbox.synchronous): FULL by default, as a message the
        # service has decided to publish is as valuable as the answer it carries; NORMAL for a
        # device whose storage cannot take an fsync per message (it still survives a crash of mlrm).
        level = "FULL" if synchronous == "full" else "NORMAL"
        # Shared by the publishing thread and the sender thread, serialised by self._lock.
        self._db = connect(self.path, synchronous=level, check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._length = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self.dropped = 0

    def _take_lock(self) -> FileLock:
        owner = try_lock(lock_path(self.path))
        if owner is None:
            raise OutboxLocked(
                f"the outbox {self.path} is in use by another process: is this service's MQTT bridge already "
                f"running? Each process needs its own mqtt.outbox.path and client_id."
            )
        return owner

    def __len__(self) -> int:
        return self._length

    def put(self, messages: Iterable[Outgoing], qos: int) -> None:
        """Store messages (all or none) in one transaction; OutboxFull if reject_new and no room."""
        rows = [(m.topic, m.payload, qos, time.time()) for m in messages]
        if not rows:
            return
        with self._lock:
            over = self._length + len(rows) - self.max_messages
            if over > 0 and self.on_full == "reject_new":
                self.dropped += len(rows)
                raise OutboxFull(
                    f"the outbox holds {self._length} messages (mqtt.outbox.max_messages: {self.max_messages}) "
                    f"and on_full is reject_new: {len(rows)} new message(s) dropped"
                )
            with transaction(self._db):
                if over > 0:
                    cur = self._db.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (over,)
                    )
                    removed = max(cur.rowcount, 0)
                else:
                    removed = 0
                # More new rows than the whole outbox holds: keep the newest.
                keep = rows[-self.max_messages :]
                self._db.executemany("INSERT INTO outbox (topic, payload, qos, created) VALUES (?, ?, ?, ?)", keep)
            self._length += len(keep) - removed
            self.dropped += removed + len(rows) - len(keep)

    def peek(self, after: int = 0, limit: int = 100) -> list[Queued]:
        """Up to limit messages with seq > after, oldest first."""
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, topic, payload, qos FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            )
            return [Queued(int(s), str(t), bytes(p), int(q)) for s, t, p, q in cur.fetchall()]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker has acknowledged."""
        keys = [(s,) for s in seqs]
        if not keys:
            return
        with self._lock:
            before = self._db.total_changes
            with transaction(self._db):
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", keys)
            self._length -= self._db.total_changes - before

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._owner.release()
