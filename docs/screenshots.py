"""Regenerate the README's pictures: `python docs/screenshots.py` from the repo root.

Runs the demo into a fresh temporary home, serves it with dagster-webserver on a free loopback
port, and takes headless Chromium screenshots (Debian: `apt-get install chromium`) of one
customer's asset graph, a table's catalog page and the customer's privacy requests asset (the
demo's one delete request honoured) into docs/*.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CUSTOMER = "acme"
# (file, page, window size in CSS pixels, device scale): the graph is tall, so it is drawn
# at 0.7 to fit every asset in one picture of ~1,000 x 2,000 pixels.
SHOTS = [
    ("asset-graph.png", f"/locations/clickstream/asset-groups/{CUSTOMER}/lineage",
     (1400, 2800), 0.7),
    ("catalog-table.png", f"/assets/{CUSTOMER}/tracks", (1440, 1100), 1.0),
    ("privacy-requests.png", f"/assets/{CUSTOMER}/privacy_requests", (1440, 1100), 1.0),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"dagster-webserver did not answer on {url} within {timeout:.0f} s")


def screenshot(browser: str, url: str, out: Path, size: tuple[int, int], scale: float) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--force-device-scale-factor={scale}", f"--window-size={size[0]},{size[1]}",
                    "--virtual-time-budget=20000", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)
    print(f"{out.relative_to(REPO)}: {out.stat().st_size // 1024} KB", file=sys.stderr)


def main() -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: needs chromium (Debian/Ubuntu: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="clickstream-shots-") as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CLICKSTREAM_") and k != "DAGSTER_HOME"}
        subprocess.run([sys.executable, "-m", "clickstream_assets.cli", "demo", "--home",
                        str(home)], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        port = free_port()
        env.update(CLICKSTREAM_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
        server = subprocess.Popen(["dagster-webserver", "-w", "workspace.yaml", "-h",
                                   "127.0.0.1", "-p", str(port)], env=env, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, server)
            for name, page, size, scale in SHOTS:
                screenshot(browser, url + page, REPO / "docs" / name, size, scale)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
