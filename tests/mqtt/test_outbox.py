"""The outbox: ordered, durable across reopen, bounded as configured, one owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlrm.mqtt.messages import Outgoing
from mlrm.storage.mqtt_outbox import MqttOutbox, OutboxFull, OutboxLocked
from tests.toolkit.files import ROOT


def _msgs(*ids: int) -> list[Outgoing]:
    return [Outgoing(f"t/{i}", str(i).encode()) for i in ids]


def test_messages_come_out_in_order_and_survive_reopen(tmp_path: Path) -> None:
    box = MqttOutbox(tmp_path / "o.sqlite")
    box.put(_msgs(1, 2, 3), qos=1)
    box.put(_msgs(4), qos=1)
    first = box.peek(limit=2)
    assert [q.payload for q in first] == [b"1", b"2"] and first[0].qos == 1
    box.remove([first[0].seq])
    assert [q.payload for q in box.peek(after=first[1].seq)] == [b"3", b"4"]
    box.close()
    again = MqttOutbox(tmp_path / "o.sqlite")
    assert len(again) == 3 and [q.payload for q in again.peek()] == [b"2", b"3", b"4"]
    again.put(_msgs(5), qos=1)
    assert again.peek()[-1].seq > first[1].seq  # sequence numbers are never reused
    again.close()


def test_a_killed_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys\n"
        "from mlrm.storage.mqtt_outbox import MqttOutbox\nfrom mlrm.mqtt.messages import Outgoing\n"
        "box = MqttOutbox(sys.argv[1])\n"
        "for i in range(50): box.put([Outgoing('t', str(i).encode())], qos=1)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o.sqlite")], cwd=ROOT, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    box = MqttOutbox(tmp_path / "o.sqlite")  # the dead process's lock went with it
    assert [int(q.payload) for q in box.peek(limit=100)] == list(range(50))
    box.close()


def test_drop_oldest_keeps_the_newest(tmp_path: Path) -> None:
    box = MqttOutbox(tmp_path / "o.sqlite", max_messages=3, on_full="drop_oldest")
    box.put(_msgs(1, 2, 3), qos=1)
    box.put(_msgs(4, 5), qos=1)
    assert [q.payload for q in box.peek()] == [b"3", b"4", b"5"] and box.dropped == 2
    box.put(_msgs(6, 7, 8, 9), qos=1)
    assert [q.payload for q in box.peek()] == [b"7", b"8", b"9"] and box.dropped == 6 and len(box) == 3
    box.close()


def test_reject_new_refuses_whole_batches(tmp_path: Path) -> None:
    box = MqttOutbox(tmp_path / "o.sqlite", max_messages=3, on_full="reject_new")
    box.put(_msgs(1, 2), qos=1)
    with pytest.raises(OutboxFull, match="max_messages: 3"):
        box.put(_msgs(3, 4), qos=1)
    assert [q.payload for q in box.peek()] == [b"1", b"2"] and box.dropped == 2
    box.put(_msgs(3), qos=1)
    assert len(box) == 3
    box.close()


def test_one_process_owns_an_outbox(tmp_path: Path) -> None:
    box = MqttOutbox(tmp_path / "o.sqlite")
    with pytest.raises(OutboxLocked, match="in use by another process"):
        MqttOutbox(tmp_path / "o.sqlite")
    box.close()
    MqttOutbox(tmp_path / "o.sqlite").close()
