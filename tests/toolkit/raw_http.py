"""HTTP/1.1 requests written byte by byte on a socket, for what `requests`
cannot send: a chunked body of a chosen shape, a chunk-size line that lies.

The reply is read until the server closes the connection (every request
asks it to), so a test sees exactly what the service answered.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def chunked(body: bytes, size: int = 8192) -> bytes:
    """body as chunks of `size` bytes and the last, empty chunk."""
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def post(url: str, path: str, content_type: str, raw_body: bytes, headers: dict[str, str] | None = None) -> Reply:
    """POST raw_body (already framed: see chunked()) with Transfer-Encoding: chunked."""
    host, port = url.removeprefix("http://").split(":")
    head = {"Host": host, "Content-Type": content_type, "Transfer-Encoding": "chunked", "Connection": "close"}
    lines = "".join(f"{k}: {v}\r\n" for k, v in {**head, **(headers or {})}.items())
    with socket.create_connection((host, int(port)), timeout=30) as s:
        try:
            s.sendall(f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode() + raw_body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service answered before reading everything: its answer is still to be read
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head_bytes, _, payload = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in header_lines)
    return Reply(int(status_line.split()[1]), {k.strip().lower(): v.strip() for k, v in fields.items()}, payload)
