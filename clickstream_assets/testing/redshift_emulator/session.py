"""One client connection and its PostgreSQL backend connection: the wire-protocol proxy.
redshift-connector speaks PostgreSQL v3 with Redshift's additions, which a plain PostgreSQL
refuses, so the session adapts the startup (drops Redshift-only parameters, answers SSL
with "no TLS", checks a password as Redshift would, reports Redshift's server_version),
passes each statement through the Redshift rules, runs COPY from S3 itself, maps long names
back in replies and fires injected faults."""

from __future__ import annotations

import re
import socket
import struct
import threading
from typing import TYPE_CHECKING

from clickstream_assets.testing.redshift_emulator.cast_trap import SESSION_GUC
from clickstream_assets.testing.redshift_emulator.copy_s3 import CopyFromS3, parse_copy
from clickstream_assets.testing.redshift_emulator.protocol import (
    GSSENC_REQUEST,
    PROTOCOL_3,
    SSL_REQUEST,
    cstr,
    msg,
    read_msg,
    recv_exact,
)
from clickstream_assets.testing.redshift_emulator.rules import rewrite
from clickstream_assets.testing.redshift_emulator.sqltext import EmulatorError, raise_sql
from clickstream_assets.testing.redshift_emulator.varchar_bytes import redshift_error

if TYPE_CHECKING:
    from clickstream_assets.testing.redshift_emulator.server import RedshiftEmulator

DROPPED_STARTUP_PARAMS = {
    b"client_protocol_version", b"driver_version", b"os_version", b"driver_discovery_version",
    b"plugin_name", b"idp_type", b"provider_name", b"token_type", b"identity_namespace",
}
REDSHIFT_SERVER_VERSION = b"8.0.2"


class Session(CopyFromS3):
    """One client connection and its backend connection."""

    def __init__(self, emulator: RedshiftEmulator, client: socket.socket):
        self.emu = emulator
        self.client = client
        self.backend: socket.socket | None = None
        self.write_lock = threading.Lock()
        self.status = b"I"
        self.capture: list | None = None
        self.capture_done = threading.Condition()
        self.blackhole = False
        self.copy_statements: set[bytes] = set()
        self.copy_portals: dict[bytes, str] = {}
        self.statements: dict[bytes, str] = {}
        self.portals: dict[bytes, str] = {}
        self.in_copy_group = False
        self.skip_to_sync = False
        self.executed: list[str] = []

    # -- plumbing ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._startup():
                threading.Thread(target=self._pump_backend, daemon=True).start()
                self._client_loop()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        for sock in (self.client, self.backend):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def to_client(self, data: bytes) -> None:
        with self.write_lock:
            self.client.sendall(data)

    def _startup(self) -> bool:
        body = self._startup_packet()
        if body is None:
            return False
        params = self._kept_params(body)
        if self.emu.password is not None and not self._check_password(params):
            return False
        given = dict(p.rstrip(b"\0").split(b"\0", 1) for p in params)
        self.emu.prepare_database((given.get(b"database") or given.get(b"user", b"")).decode())
        params.append(SESSION_GUC.encode() + b"\0on\0")
        startup = struct.pack("!i", PROTOCOL_3) + b"".join(params) + b"\0"
        self.backend = socket.create_connection((self.emu.backend_host, self.emu.backend_port))
        self.backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.backend.sendall(struct.pack("!i", len(startup) + 4) + startup)
        return True

    def _startup_packet(self) -> bytes | None:
        """The client's StartupMessage body, after refusing SSL/GSS encryption; None for
        any other protocol."""
        while True:
            (length,) = struct.unpack("!i", recv_exact(self.client, 4))
            body = recv_exact(self.client, length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.client.sendall(b"N")
                continue
            return body if code == PROTOCOL_3 else None

    @staticmethod
    def _kept_params(body: bytes) -> list[bytes]:
        """The startup parameters PostgreSQL accepts, each as `key\\0value\\0`."""
        params, pos = [], 4
        while body[pos:pos + 1] != b"\0":
            key, pos = cstr(body, pos)
            value, pos = cstr(body, pos)
            if key not in DROPPED_STARTUP_PARAMS:
                params.append(key + b"\0" + value + b"\0")
        return params

    def _check_password(self, params: list[bytes]) -> bool:
        """Ask for the password (AuthenticationCleartextPassword); refuse a wrong one."""
        user = next((p.split(b"\0")[1] for p in params if p.startswith(b"user\0")), b"")
        self.client.sendall(msg(b"R", struct.pack("!i", 3)))
        kind, body = read_msg(self.client)
        if kind == b"p" and body.rstrip(b"\0").decode() == self.emu.password:
            return True
        self.client.sendall(msg(b"E", b"SFATAL\0VFATAL\0C28000\0Mpassword authentication "
                                b"failed for user \"" + user + b"\"\0\0"))
        return False

    def _pump_backend(self) -> None:
        try:
            while True:
                code, body = read_msg(self.backend)
                if not self._forward(code, self._as_redshift(code, body)):
                    return
        except (ConnectionError, OSError):
            self.close()

    def _as_redshift(self, code: bytes, body: bytes) -> bytes:
        """A backend message as Redshift would send it (full names, its errors, version)."""
        body = self.emu.names.restore(code, body)
        if code == b"E":
            body = redshift_error(body)
        if code == b"S" and body.startswith(b"server_version\0"):
            body = b"server_version\0" + REDSHIFT_SERVER_VERSION + b"\0"
        if code == b"Z":
            self.status = body[:1]
        return body

    def _forward(self, code: bytes, body: bytes) -> bool:
        """Send a backend message on (to the client, or to our own capture); False once a
        faulted statement finished and the session is closed."""
        if self.blackhole:
            if code == b"Z":  # the statement finished; the client never hears of it
                self.close()
                return False
            return True
        if self.capture is not None:
            with self.capture_done:
                self.capture.append((code, body))
                self.capture_done.notify_all()
            return True
        self.to_client(msg(code, body))
        return True

    def _backend_query(self, sql: str) -> list[tuple[bytes, bytes]]:
        """Run a simple query on the backend, collecting its replies up to ReadyForQuery."""
        with self.capture_done:
            self.capture = []
        self.backend.sendall(msg(b"Q", sql.encode() + b"\0"))
        return self._await(lambda msgs: msgs and msgs[-1][0] in (b"Z", b"G"))

    def _await(self, done) -> list[tuple[bytes, bytes]]:
        with self.capture_done:
            if not self.capture_done.wait_for(lambda: done(self.capture), timeout=300):
                raise ConnectionError("backend did not answer")
            msgs, self.capture = self.capture, []
        return msgs

    def _release_capture(self) -> None:
        with self.capture_done:
            self.capture = None

    # -- client messages ---------------------------------------------------------------
    def _client_loop(self) -> None:
        while True:
            code, body = read_msg(self.client)
            if code == b"X":
                self.backend.sendall(msg(code, body))
                return
            handler = getattr(self, f"_on_{code.decode()}", None) if code.isalpha() else None
            if handler is None or not handler(body):
                self.backend.sendall(msg(code, body))

    def _rewrite(self, sql: str) -> str:
        """The statement as PostgreSQL should run it (see rules.rewrite); recorded as sent."""
        self.emu.statements.append(sql)
        return rewrite(sql, self.status != b"I", self.emu.names)

    def _on_Q(self, body: bytes) -> bool:
        sql = body[:-1].decode()
        self.backend.sendall(msg(b"Q", self._rewrite(sql).encode() + b"\0"))
        return True

    def _on_P(self, body: bytes) -> bool:
        name, pos = cstr(body, 0)
        query, pos = cstr(body, pos)
        sql = query.decode()
        if re.match(r"\s*COPY\b", sql, re.I) and "s3://" in sql:
            self.emu.statements.append(sql)
            try:
                parse_copy(sql)
                self.copy_statements.add(name)
                self.statements[name] = sql
                self.in_copy_group = True
                self.to_client(msg(b"1", b""))
                return True
            except EmulatorError as exc:
                sql = raise_sql(str(exc))
        else:
            sql = self._rewrite(sql)
        self.statements[name] = sql
        self.backend.sendall(msg(b"P", name + b"\0" + sql.encode() + b"\0" + body[pos:]))
        return True

    def _on_D(self, body: bytes) -> bool:
        name = body[1:-1]
        if (body[:1] == b"S" and name in self.copy_statements) or (
                body[:1] == b"P" and name in self.copy_portals):
            if body[:1] == b"S":
                self.to_client(msg(b"t", struct.pack("!h", 0)))
            self.to_client(msg(b"n", b""))
            return True
        return False

    def _on_B(self, body: bytes) -> bool:
        portal, pos = cstr(body, 0)
        stmt, _ = cstr(body, pos)
        if stmt in self.copy_statements:
            self.copy_portals[portal] = self.statements[stmt]
            self.in_copy_group = True
            self.to_client(msg(b"2", b""))
            return True
        self.copy_portals.pop(portal, None)  # a portal name is reused by the next Bind
        self.portals[portal] = self.statements.get(stmt, "")
        mapped = self.emu.names.bind(body)
        if mapped is body:
            return False
        self.backend.sendall(msg(b"B", mapped))
        return True

    def _on_E(self, body: bytes) -> bool:
        portal, _ = cstr(body, 0)
        is_copy = portal in self.copy_portals
        sql = self.copy_portals[portal] if is_copy else self.portals.get(portal, "")
        fault = self.emu.take_fault(sql, self.executed)
        self.executed.append(sql)
        if fault and (fault.when == "before" or is_copy):
            self.close()
            raise ConnectionError("fault injected")
        if is_copy:
            if not self.skip_to_sync:
                self._run_copy(sql)
            return True
        if fault:
            self.blackhole = True
        return False

    def _on_S(self, body: bytes) -> bool:
        if self.in_copy_group:
            self.in_copy_group = self.skip_to_sync = False
            self.to_client(msg(b"Z", self.status))
            return True
        return False

    def _on_H(self, body: bytes) -> bool:
        return self.in_copy_group  # our own replies are sent at once

    def _on_C(self, body: bytes) -> bool:
        name = body[1:-1]
        if body[:1] == b"S" and name in self.copy_statements:
            self.copy_statements.discard(name)
            self.to_client(msg(b"3", b""))
            return True
        return False
