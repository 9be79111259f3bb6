"""The emulator itself: a loopback listener in front of PostgreSQL that starts a session per
connection, and the state its sessions share and tests inspect or steer (statements and
COPYs seen, faults, refused connections, the password, long names' stand-ins)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from clickstream_assets.testing.redshift_emulator.cast_trap import install_bool_cast_trap
from clickstream_assets.testing.redshift_emulator.faults import Fault, fire_first
from clickstream_assets.testing.redshift_emulator.names import IdentifierMap
from clickstream_assets.testing.redshift_emulator.session import Session


@dataclass
class RedshiftEmulator:
    backend_host: str
    backend_port: int
    s3_endpoint_url: str
    host: str = "127.0.0.1"
    port: int = 0
    copies: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    refuse_connections: bool = False
    # when set, logins are checked as Redshift checks them (cleartext over the emulator's
    # loopback): a wrong password gets Redshift's FATAL 28000, so the driver raises its own
    password: str | None = None
    # the COPY role's keys, as Redshift reads S3 with them (default: the environment's)
    s3_credentials: dict = field(default_factory=dict)
    # long names' stand-ins, for every session (see IdentifierMap)
    names: IdentifierMap = field(default_factory=IdentifierMap)
    # a PostgreSQL superuser, to set up each database's boolean cast trap
    admin_user: str = "postgres"

    def start(self) -> "RedshiftEmulator":
        self._prepared: set[str] = set()
        self._prepare_lock = threading.Lock()
        self._listener = socket.create_server((self.host, self.port))
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        threading.Thread(target=self._accept_loop, daemon=True, name="rs-emulator").start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()

    def inject(self, pattern: str, when: str = "before", armed_by: str | None = None,
               then_refuse: bool = False) -> Fault:
        fault = Fault(pattern, when, armed_by, then_refuse)
        self.faults.append(fault)
        return fault

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse_connections:
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=Session(self, client).run, daemon=True).start()

    def prepare_database(self, database: str) -> None:
        """Once per database: its boolean -> text casts raise in emulator sessions, as
        Redshift has no such cast (a missing database fails the session's own login)."""
        with self._prepare_lock:
            if database in self._prepared:
                return
            if install_bool_cast_trap(self.backend_host, self.backend_port, database,
                                      self.admin_user):
                self._prepared.add(database)

    def take_fault(self, sql: str, history: list[str]) -> Fault | None:
        fault = fire_first(self.faults, sql, history)
        if fault is not None:
            self.refuse_connections = self.refuse_connections or fault.then_refuse
        return fault

    def s3(self):
        import boto3  # noqa: PLC0415

        return boto3.client("s3", endpoint_url=self.s3_endpoint_url, region_name="us-east-1",
                            **self.s3_credentials)
