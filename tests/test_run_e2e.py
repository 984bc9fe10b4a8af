"""`ledgerline run` (what `make run` starts), as a user sees it: servers come up, demo data is
seeded, the banner prints working tokens, Ctrl-C leaves no PostgreSQL or Redis behind, and a
second run reuses the data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from api.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN_LINE = re.compile(r"^\s*(\w+)\s+\{\"Authorization\": \"Bearer ([^\"]+)\"\}")


class RunningLedgerline:
    """`ledgerline run` started in `workdir` with the default DATA_DIR (`.ledgerline`, relative to
    where it starts), as `make run` starts it in a checkout."""

    def __init__(self, workdir: Path, port: int) -> None:
        env = {
            **os.environ,
            "PORT": str(port),
            "PYTHONPATH": str(ROOT),  # a checkout's tests/ (the Stripe emulator), as from its root
            "SEED_CUSTOMERS": "25",
            "LOG_LEVEL": "WARNING",
            "COLUMNS": "400",
        }
        for name in ("DATABASE_URL", "REDIS_URL", "DATA_DIR"):
            env.pop(name, None)
        self.port = port
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "run"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def wait_for_banner(self, timeout: float = 240) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("Press Ctrl-C to stop" in line for line in self.output):
                tokens = {}
                for line in self.output:
                    if match := TOKEN_LINE.match(line):
                        tokens[match.group(1)] = match.group(2)
                return tokens
            assert self.process.poll() is None, "".join(self.output)
            time.sleep(0.3)
        raise AssertionError("no banner:\n" + "".join(self.output))

    def ctrl_c(self, timeout: float = 90) -> int:
        os.killpg(self.process.pid, signal.SIGINT)  # what the terminal sends to the whole group
        return self.process.wait(timeout=timeout)

    def interrupt_parent_only(self, timeout: float = 90) -> int:
        self.process.send_signal(signal.SIGINT)  # `kill -INT <pid>`: the children hear it from the parent
        return self.process.wait(timeout=timeout)


def servers_using(data_dir: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(cmdline)
    return found


def customers_total(port: int, token: str) -> int:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": "{ customers(first: 5) { totalCount edges { node { name tier } } } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return int(body["data"]["customers"]["totalCount"])


def test_make_run_end_to_end(tmp_path: Path) -> None:
    data_dir = (tmp_path / ".ledgerline").resolve()  # the default DATA_DIR, relative to the workdir
    port = free_port()
    run = RunningLedgerline(tmp_path, port)
    try:
        tokens = run.wait_for_banner()
        assert set(tokens) == {"owner", "operations", "finance", "support", "analyst"}
        assert f"http://127.0.0.1:{port}/graphql" in "".join(run.output)
        assert "Stripe:    local emulator at http://127.0.0.1:" in "".join(run.output)  # no Stripe configured
        assert "Email:     local SMTP sink at smtp://127.0.0.1:" in "".join(run.output)  # no SMTP_URL
        assert customers_total(port, tokens["owner"]) == 25
        page = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        assert servers_using(data_dir), "embedded servers should be running under the data dir"
    finally:
        code = run.ctrl_c()
    assert code == 0, "".join(run.output)
    time.sleep(0.5)
    assert servers_using(data_dir) == [], "PostgreSQL or Redis outlived Ctrl-C"

    again = RunningLedgerline(tmp_path, port)
    try:
        tokens = again.wait_for_banner()
        assert not any("seeding demo data" in line for line in again.output)
        assert customers_total(port, tokens["analyst"]) == 25
    finally:
        assert again.interrupt_parent_only() == 0
    time.sleep(0.5)
    assert servers_using(data_dir) == []
