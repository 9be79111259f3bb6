"""PostgreSQL v3 wire messages: framing, and the few message bodies the emulator reads or
rewrites. Kept apart so the session, name mapping and COPY code deal in messages, not bytes."""

from __future__ import annotations

import socket
import struct

SSL_REQUEST, GSSENC_REQUEST, PROTOCOL_3 = 80877103, 80877104, 196608


def msg(code: bytes, body: bytes) -> bytes:
    return code + struct.pack("!i", len(body) + 4) + body


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return bytes(buf)


def read_msg(sock: socket.socket) -> tuple[bytes, bytes]:
    head = recv_exact(sock, 5)
    (length,) = struct.unpack("!i", head[1:])
    return head[:1], recv_exact(sock, length - 4)


def cstr(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


def map_data_row(body: bytes, fn) -> bytes:
    """A DataRow with `fn` applied to each non-null field."""
    (count,) = struct.unpack("!h", body[:2])
    out, pos = [body[:2]], 2
    for _ in range(count):
        (n,) = struct.unpack("!i", body[pos:pos + 4])
        pos += 4
        if n < 0:
            out.append(body[pos - 4:pos])
            continue
        value = fn(body[pos:pos + n])
        out.append(struct.pack("!i", len(value)) + value)
        pos += n
    return b"".join(out)


def map_row_description(body: bytes, fn) -> bytes:
    """A RowDescription with `fn` applied to each column name."""
    (count,) = struct.unpack("!h", body[:2])
    out, pos = [body[:2]], 2
    for _ in range(count):
        name, pos = cstr(body, pos)
        out.append(fn(name) + b"\0" + body[pos:pos + 18])
        pos += 18
    return b"".join(out)


def data_row_pair(body: bytes) -> tuple[str, str]:
    """The first two text fields of a DataRow message."""
    (count,) = struct.unpack("!h", body[:2])
    fields, pos = [], 2
    for _ in range(count):
        (n,) = struct.unpack("!i", body[pos:pos + 4])
        pos += 4
        fields.append(body[pos:pos + n].decode() if n >= 0 else "")
        pos += max(n, 0)
    return fields[0], fields[1]


def error_of(msgs: list[tuple[bytes, bytes]]) -> bytes:
    """The first ErrorResponse body among backend replies (a generic one if none)."""
    for code, body in msgs:
        if code == b"E":
            return body
    return b"SERROR\0CXX000\0Memulator: unexpected backend reply\0\0"
