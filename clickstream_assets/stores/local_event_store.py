"""The embedded default store: a folder laid out like the bucket."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from clickstream_assets.stores.event_store import EventFile, EventStore, register_store


class LocalEventStore(EventStore):
    """A folder laid out like the bucket: the embedded default."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @classmethod
    def from_url(cls, url: str) -> "LocalEventStore":
        return cls(url.removeprefix("file://"))

    @property
    def uri(self) -> str:
        return f"file://{self.root.resolve()}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise ValueError(f"key escapes the event store root: {key!r}")
        return path

    def list_prefix(self, key_prefix: str) -> list[EventFile]:
        base = self._path(key_prefix.rstrip("/") or ".")
        if not base.is_dir():
            return []
        files = []
        for path in base.rglob("*"):
            if path.is_file():
                st = path.stat()
                key = path.relative_to(self.root.resolve()).as_posix()
                files.append(EventFile(key=key, size=st.st_size, last_modified=st.st_mtime,
                                       changed_at=max(st.st_mtime, st.st_ctime)))
        return sorted(files, key=lambda f: f.key)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def write(self, key: str, data: bytes) -> None:
        """Write atomically (temp name, then rename) so a reader never sees half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


register_store("file", LocalEventStore)
