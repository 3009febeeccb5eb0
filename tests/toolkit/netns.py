"""Small networks of real hosts for tests: Linux network namespaces joined by veth pairs to a bridge.

The test process stays in the root namespace, where the bridge has the first
address of the subnet (a central host can listen there and still reach
127.0.0.1, e.g. PostgreSQL). Every other host is a namespace with one link,
`eth0`, which a test cuts and restores with `ip link set eth0 down|up`.
Processes run in a host through `ip netns exec`; the test reaches a host's
loopback services from a thread that joins its namespace (setns(2) moves
only the calling thread). Names are unique per run and everything is
deleted afterwards, even when the test fails.

Where namespaces cannot be made (not root, no `ip`) a test is skipped with
the reason, unless MLRM_REQUIRE_NETNS=1 (CI sets it): then it fails.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def unavailable(reason: str) -> NoReturn:
    """Skip (or, with MLRM_REQUIRE_NETNS=1, fail) a test that needs network namespaces."""
    if os.environ.get("MLRM_REQUIRE_NETNS") == "1":
        pytest.fail(f"network namespaces are required here (MLRM_REQUIRE_NETNS=1) but {reason}")
    pytest.skip(f"no network namespaces for this test: {reason} (run it as root on Linux with iproute2)")


def ip(*args: str) -> str:
    """Run `ip ARGS`; the error names the command and what it said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass
class Host:
    """A namespace with one link to the bridge."""

    name: str  # the namespace
    address: str
    _outer: str  # the root side of its veth pair

    def argv(self, *args: str) -> list[str]:
        """args run inside this host."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        """Take the link down, as a pulled cable: packets to the centre fail at once (no route)."""
        ip("-n", self.name, "link", "set", "eth0", "down")

    def restore(self) -> None:
        """Bring the link back up (its address and route return with it)."""
        ip("-n", self.name, "link", "set", "eth0", "up")

    def run(self, call: Callable[[], T]) -> T:
        """call() in a thread inside this host's namespace; its result, or its exception raised here."""
        out: list[T] = []
        errors: list[BaseException] = []

        def inside() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.name}")
                finally:
                    os.close(fd)
                out.append(call())
            except BaseException as exc:  # noqa: BLE001 (raised again in the caller's thread)
                errors.append(exc)

        thread = threading.Thread(target=inside, name=f"in-{self.name}")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return out[0]


@dataclass
class Network:
    """A bridge in the root namespace (the first address) and hosts joined to it."""

    tag: str
    prefix: str  # e.g. "10.213.7"
    hosts: list[Host] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"mb{self.tag}"

    @property
    def centre(self) -> str:
        """The root namespace's address on the bridge."""
        return f"{self.prefix}.1"

    def add_host(self, role: str) -> Host:
        number = len(self.hosts) + 1
        host = Host(f"mlrm-{self.tag}-{role}", f"{self.prefix}.{10 + number}", f"mv{self.tag}{number}")
        inner = f"mi{self.tag}{number}"
        ip("netns", "add", host.name)
        self.hosts.append(host)
        ip("link", "add", host._outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", host._outer, "master", self.bridge, "up")
        ip("link", "set", inner, "netns", host.name)
        ip("-n", host.name, "link", "set", inner, "name", "eth0")
        ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.name, "link", "set", "eth0", "up")
        ip("-n", host.name, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "link", "del", host._outer], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)


def _free_prefix() -> str:
    """A 10.x.y.0/24 no interface of this machine uses."""
    used = ip("-4", "-o", "addr", "show")
    for _ in range(100):
        prefix = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
        if f" {prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test network")


@contextmanager
def network() -> Iterator[Network]:
    """A fresh bridge with a unique name and subnet; deleted with every host when the block ends."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        unavailable("the tests do not run as root")
    if shutil.which("ip") is None:
        unavailable("the `ip` command (iproute2) is not installed")
    net = Network(uuid.uuid4().hex[:6], _free_prefix())
    try:
        ip("link", "add", net.bridge, "type", "bridge")
    except RuntimeError as exc:
        unavailable(f"a bridge cannot be made here ({exc})")
    try:
        ip("addr", "add", f"{net.centre}/24", "dev", net.bridge)
        ip("link", "set", net.bridge, "up")
        yield net
    finally:
        net.close()
