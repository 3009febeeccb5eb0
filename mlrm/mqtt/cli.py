"""`mlrm mqtt CONFIG_SET`: the MQTT bridge alone, in the foreground.

`mlrm serve` already runs it beside REST when service.yaml has an mqtt
section; this command is for a gateway that needs no REST, or to run the
bridge under its own systemd unit.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_mqtt(args: argparse.Namespace) -> int:
    from mlrm.config import load_config_set
    from mlrm.mqtt.bridge import configure_logging, run

    config = load_config_set(args.config_set)
    configure_logging(args.log_level, config.name)
    return run(config, args.status)


def register(add: Callable[..., Any]) -> None:
    s = add(
        "mqtt",
        "Answer measurements from an MQTT broker (the config set's mqtt section), without REST.",
        "mlrm mqtt configs/pcb-inspection --status /run/mlrm/pcb-mqtt.json",
        cmd_mqtt,
    )
    s.add_argument("config_set", metavar="CONFIG_SET")
    s.add_argument("--status", type=Path, metavar="FILE", help="rewrite this JSON status file every second")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
