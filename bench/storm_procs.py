"""The full storm's processes: start them, sample their memory, stop every one of them.

Each service (config API, code server, daemon) starts in its own session; run workers and
step processes are its descendants. Memory is the resident set of every process in those
trees, read from /proc (Linux) every `interval` seconds; stopping sends SIGTERM to each
tree, waits, then SIGKILLs whatever is left of it, so nothing outlives the bench.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children() -> dict[int, list[int]]:
    """ppid -> pids of every process visible in /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """pid and all its descendants."""
    children = _children() if children is None else children
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class Services:
    """Started subprocesses by name, their logs, and a memory sampler over their trees."""

    def __init__(self, logs: Path, interval: float = 2.0):
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.peak_total = 0
        self.peak_by_name: dict[str, int] = {}
        self.peak_processes = 0
        self._interval = interval
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)

    def start(self, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        if not self._sampler.is_alive():
            self._sampler.start()
        return proc

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n"
                                   f"{self.log_tail(name)}")

    def sample(self) -> None:
        children = _children()
        total = processes = 0
        for name, proc in self.procs.items():
            pids = tree(proc.pid, children)
            size = sum(rss_bytes(p) for p in pids)
            self.peak_by_name[name] = max(self.peak_by_name.get(name, 0), size)
            total += size
            processes += len(pids)
        self.peak_total = max(self.peak_total, total)
        self.peak_processes = max(self.peak_processes, processes)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def stop_all(self, grace: float = 30.0) -> None:
        """SIGTERM every tree (newest service first), wait up to `grace`, SIGKILL the rest."""
        self._stop.set()
        children = _children()
        trees = {name: tree(p.pid, children) for name, p in self.procs.items()}
        for name in reversed(list(self.procs)):
            _signal_all(trees[name], signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pids in trees.values():
            _signal_all([p for p in pids if Path(f"/proc/{p}").exists()], signal.SIGKILL)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
