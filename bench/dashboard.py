"""Dashboard benchmark: Ledgerline against a bare Strawberry baseline, in the same run.

    .venv/bin/python bench/dashboard.py [--duration 20] [--concurrency 16] [--workers 1 2]
                                        [--customers 10000] [--client auto|python|wrk] [--rounds 1]

1. Starts embedded PostgreSQL and Redis with their data under bench/.data/, migrates, and seeds
   the customers if the database is empty (later runs reuse it).
2. For each worker count: runs `ledgerline serve --workers N` on a free port, waits for /readyz,
   warms up and puts the dashboard query under load; then does the same with the baseline
   (bench/baseline_schema.py under uvicorn), whose in-memory data copies one real response.
3. Prints requests/s, p50/p95 latency, failures and the ratio to the baseline, and writes the
   figures as JSON under bench/results/.

A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

import api
from api.auth.roles import Role
from api.auth.tokens import issue_token
from api.embedded import embedded_services, free_port
from api.migrate import upgrade
from api.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
JWT_SECRET = "ledgerline-bench-secret"

QUERY = (
    "query Dashboard { customers(first: 50) { edges { node { subscriptions { items { price { unitAmount "
    "{ amount } } } } invoices(first: 3) { edges { node { amountDue { amount } } } } } } } }"
)


def dashboard_query(order_by: str | None = None) -> str:
    """The dashboard query; `order_by` (a CustomerOrder) is an optional variant of the page."""
    if order_by is None:
        return QUERY
    return QUERY.replace("customers(first: 50)", f"customers(first: 50, orderBy: {order_by})", 1)


def payload(query: str) -> str:
    return json.dumps({"query": query, "operationName": "Dashboard"}, separators=(",", ":"))


TARGETS = ("ledgerline", "baseline")
NOISY_PERCENT = 25


# --- load generation -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    client: str
    seconds: float
    requests: int
    failures: int
    latencies_ms: dict[str, float]
    failure_samples: list[str] = field(default_factory=list)
    client_cpu_percent: float | None = None

    @property
    def requests_per_second(self) -> float:
        return max(0, self.requests - self.failures) / self.seconds if self.seconds else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in seconds)
    if not ordered:
        return {}
    return {
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
    }


def http_request(port: int, token: str, query: str) -> bytes:
    body = payload(query).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, server wants the connection closed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    if chunked:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts), close
    if length is not None:
        return status, await reader.readexactly(length), close
    return status, await reader.read(), True


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    failures: int = 0
    samples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.samples) < 5:
            self.samples.append(what[:300])


async def _client_loop(port: int, request: bytes, deadline: float, request_timeout: float, tally: _Tally) -> None:
    """One keep-alive connection sending the query back to back until the deadline."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(request_timeout):
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(request)
                status, body, close = await _read_response(reader)
        except (OSError, EOFError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            tally.requests += 1
            tally.fail(f"{type(exc).__name__}: {exc}")
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        tally.requests += 1
        if status != 200 or b'"errors"' in body:
            tally.fail(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        else:
            tally.latencies.append(time.perf_counter() - started)
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _python_load(
    port: int, token: str, seconds: float, concurrency: int, query: str, request_timeout: float
) -> LoadResult:
    request = http_request(port, token, query)
    tally = _Tally()
    cpu_before = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_client_loop(port, request, deadline, request_timeout, tally) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    return LoadResult(
        client="python-asyncio",
        seconds=elapsed,
        requests=tally.requests,
        failures=tally.failures,
        latencies_ms=latency_summary(tally.latencies),
        failure_samples=tally.samples,
        client_cpu_percent=100 * cpu / elapsed,
    )


def python_load(port: int, token: str, seconds: float, concurrency: int, query: str, timeout: float = 30) -> LoadResult:
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_python_load(port, token, seconds, concurrency, query, timeout))


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  sample = ""
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    failures = failures + 1
    if sample == "" then sample = "HTTP " .. status .. ": " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local failed = 0
  local sample = ""
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    if sample == "" then sample = thread:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT %d %d %d %d %d %d %d %d %f %f %f %f %f %f\\n",
    summary.duration, summary.requests, failed, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
  io.write("WRK-SAMPLE " .. sample .. "\\n")
end
"""


def wrk_load(port: int, token: str, seconds: float, concurrency: int, query: str, timeout: float = 30) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=payload(query), token=token))
    try:
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={round(timeout)}s",
                "-s",
                script.name,
                f"http://{HOST}:{port}/graphql",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + timeout + 30,
        )
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(script.name)
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("WRK-RESULT "))
    sample = next((ln[len("WRK-SAMPLE ") :] for ln in completed.stdout.splitlines() if ln.startswith("WRK-SAMPLE")), "")
    fields = line.split()[1:]
    duration_us, requests, failed, *socket_errors = (int(f) for f in fields[:8])
    mean, p50, p90, p95, p99, worst = (float(f) / 1000 for f in fields[8:])
    # wrk counts a non-2xx response both in errors.status and in our Lua `failures`
    failures = failed + sum(socket_errors[:3]) + socket_errors[4]
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    return LoadResult(
        client="wrk",
        seconds=duration_us / 1e6,
        requests=requests,
        failures=failures,
        latencies_ms={"mean": mean, "p50": p50, "p90": p90, "p95": p95, "p99": p99, "max": worst},
        failure_samples=[sample] if sample else [],
        client_cpu_percent=100 * wrk_cpu * 1e6 / duration_us if duration_us else None,
    )


def run_load(client: str, port: int, token: str, seconds: float, concurrency: int, query: str) -> LoadResult:
    if client == "wrk":
        return wrk_load(port, token, seconds, concurrency, query)
    return python_load(port, token, seconds, concurrency, query)


# --- CPU accounting from /proc ---------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds used so far) for every process we can see."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # utime + stime, plus cutime + cstime: the CPU of children it has reaped (short-lived
        # PostgreSQL backends of connections the pool opened and closed during the run)
        table[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK)
    return table


def tree_cpu_seconds(root_pid: int | None) -> dict[int, float]:
    """CPU seconds of `root_pid` and each of its descendants, by pid."""
    if root_pid is None or not Path("/proc").is_dir():
        return {}
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, float] = {}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        if pid in table:
            found[pid] = table[pid][1]
            stack.extend(children.get(pid, []))
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return (sum(ticks[:8]) - idle) / _TICK
    return 0.0


def wait_for_quiet(max_wait: float, busy_limit: float = 0.15) -> float:
    """Wait (at most `max_wait` s) until the machine is nearly idle: other people's work on a
    shared machine skews a benchmark. Returns the busy fraction seen last (0..1 of all cores)."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(1)
        busy = (machine_busy_seconds() - before) / cores
        if busy < busy_limit or time.monotonic() >= deadline:
            return busy


def postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pid_file.read_text().splitlines()[0])
    return None


# --- servers ---------------------------------------------------------------------------------------


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited during start-up; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not become ready at {url}; see {log_path}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # the server ran in its own process group: take any worker left behind with it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_server(argv: list[str], env: dict[str, str], port: int, log_path: Path) -> Iterator[int]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(f"http://{HOST}:{port}/readyz", process, log_path)
            yield process.pid
        finally:
            stop(process)


def ledgerline_argv(workers: int) -> list[str]:
    script = Path(sys.executable).parent / "ledgerline"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "api.cli"]
    return [*cli, "serve", "--workers", str(workers)]


def baseline_argv(workers: int, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "baseline_schema:create_app",
        "--factory",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def post_query(port: int, token: str, query: str) -> dict[str, Any]:
    response = httpx.post(
        f"http://{HOST}:{port}/graphql",
        content=payload(query),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=60,
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"the dashboard query failed: HTTP {response.status_code} {json.dumps(body)[:500]}")
    return body


def shape_of(response: dict[str, Any]) -> dict[str, Any]:
    """Cardinalities of a dashboard response: what the baseline imitates."""
    nodes = [edge["node"] for edge in response["data"]["customers"]["edges"]]
    subscriptions = [len(n["subscriptions"]) for n in nodes]
    items = [len(s["items"]) for n in nodes for s in n["subscriptions"]]
    invoices = [len(n["invoices"]["edges"]) for n in nodes]

    def spread(values: list[int]) -> dict[str, float]:
        return {"total": sum(values), "min": min(values, default=0), "max": max(values, default=0)}

    return {
        "customers": len(nodes),
        "subscriptions_per_customer": spread(subscriptions),
        "items_per_subscription": spread(items),
        "invoices_per_customer": spread(invoices),
        "prices": sum(items),
        "response_bytes": len(json.dumps(response, separators=(",", ":"))),
    }


# --- data ------------------------------------------------------------------------------------------


def prepare_database(database_url: str, customers: int, seed: int, data_dir: Path) -> int:
    """Migrate, seed if empty, and return how many customers the database has."""
    upgrade(database_url)
    from api.seed import database_is_empty, seed_demo_data

    if asyncio.run(database_is_empty(database_url)):
        print(f"seeding {customers} customers into {data_dir} (once; later runs reuse them) …", flush=True)
        last_print = 0.0

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last_print
            now = time.monotonic()
            if done == total or now - last_print > 10:
                last_print = now
                print(f"  {stage}: {done}/{total}", flush=True)

        summary = asyncio.run(seed_demo_data(database_url, customers=customers, seed=seed, progress=progress))
        print(f"  seeded in {summary.seconds:.0f}s", flush=True)
    return asyncio.run(count_customers(database_url))


async def count_customers(database_url: str) -> int:
    import asyncpg

    from api.db import sync_url

    conn = await asyncpg.connect(sync_url(database_url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM customer"))
    finally:
        await conn.close()


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    target: str
    workers: int
    load: LoadResult
    server_cpu_seconds: float
    database_cpu_seconds: float
    other_cpu_seconds: float
    idle_before: float
    loadavg_before: tuple[float, float, float]
    ratio_to_baseline: float | None = None

    def row(self) -> dict[str, Any]:
        lat = self.load.latencies_ms
        ok = self.load.requests - self.load.failures
        return {
            "target": self.target,
            "workers": self.workers,
            "rps": self.load.requests_per_second,
            "p50": lat.get("p50", float("nan")),
            "p95": lat.get("p95", float("nan")),
            "errors": self.load.failures,
            "ratio": self.ratio_to_baseline,
            "server_cpu_ms": 1000 * self.server_cpu_seconds / ok if ok else float("nan"),
            "db_cpu_ms": 1000 * self.database_cpu_seconds / ok if ok else float("nan"),
            "client_cpu_percent": self.load.client_cpu_percent,
            "other_cpu_percent": 100 * self.other_cpu_seconds / self.load.seconds if self.load.seconds else None,
        }


def measure(
    target: str, workers: int, server_pid: int, port: int, token: str, args: argparse.Namespace
) -> TargetResult:
    client, query = args.client, dashboard_query(args.order_by)
    if args.warmup > 0:
        run_load(client, port, token, args.warmup, args.concurrency, query)
    busy = wait_for_quiet(args.settle)
    if busy >= 0.15:
        print(f"  note: the machine is {100 * busy:.0f}% busy with other work; figures will be low", flush=True)
    loadavg = os.getloadavg()
    pg_pid = postmaster_pid(args.data_dir)
    server_before, db_before = tree_cpu_seconds(server_pid), tree_cpu_seconds(pg_pid)
    machine_before = machine_busy_seconds()
    load = run_load(client, port, token, args.duration, args.concurrency, query)
    machine_used = machine_busy_seconds() - machine_before
    server_after, db_after = tree_cpu_seconds(server_pid), tree_cpu_seconds(pg_pid)
    server_cpu, db_cpu = cpu_used(server_before, server_after), cpu_used(db_before, db_after)
    client_cpu = (load.client_cpu_percent or 0) * load.seconds / 100
    result = TargetResult(
        target=target,
        workers=workers,
        load=load,
        server_cpu_seconds=server_cpu,
        database_cpu_seconds=db_cpu,
        other_cpu_seconds=max(0.0, machine_used - server_cpu - db_cpu - client_cpu),
        idle_before=round(1 - busy, 2),
        loadavg_before=(round(loadavg[0], 2), round(loadavg[1], 2), round(loadavg[2], 2)),
    )
    row = result.row()
    print(
        f"  {target:<10} workers={workers}  {row['rps']:8.1f} req/s  p50 {row['p50']:7.1f} ms  "
        f"p95 {row['p95']:7.1f} ms  errors {row['errors']}",
        flush=True,
    )
    for sample in load.failure_samples[:3]:
        print(f"    failure: {sample}", flush=True)
    return result


def print_table(results: list[TargetResult]) -> None:
    header = (
        f"{'target':<11}{'workers':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}{'vs baseline':>13}"
        f"{'server CPU ms/req':>19}{'db CPU ms/req':>15}{'client CPU':>12}{'other CPU':>11}"
    )
    print()
    print(header)
    print("-" * len(header))
    for result in results:
        row = result.row()
        ratio = f"{100 * row['ratio']:.0f}%" if row["ratio"] is not None else "-"
        client = f"{row['client_cpu_percent']:.0f}%" if row["client_cpu_percent"] is not None else "?"
        other = "?"
        if row["other_cpu_percent"] is not None:
            other = f"{row['other_cpu_percent']:.0f}%" + ("!" if row["other_cpu_percent"] > NOISY_PERCENT else "")
        print(
            f"{row['target']:<11}{row['workers']:>8}{row['rps']:>9.1f}{row['p50']:>9.1f}{row['p95']:>9.1f}"
            f"{row['errors']:>8}{ratio:>13}{row['server_cpu_ms']:>19.2f}{row['db_cpu_ms']:>15.2f}{client:>12}{other:>11}"
        )
    print("(CPU: % of one core during the run; 'other' is every process not part of the benchmark;")
    print(f" '!': other work took more than {NOISY_PERCENT}% of a core during the run, so its figures are depressed)")
    print()


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    versions = {}
    for dist in ("strawberry-graphql", "graphql-core", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
    }


def ledgerline_source() -> Path:
    """The source tree the servers run: this checkout, or another one put first on PYTHONPATH."""
    return Path(api.__file__).resolve().parent.parent


def git_commit() -> str | None:
    """`git describe` of the Ledgerline source that was measured (None if it is not a git checkout)."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ledgerline_source(),
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20, help="Seconds of measured load per target.")
    parser.add_argument("--warmup", type=float, default=5, help="Seconds of unmeasured load first.")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent keep-alive connections.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker counts.")
    parser.add_argument("--customers", type=int, default=10_000, help="Customers to seed into an empty database.")
    parser.add_argument("--seed", type=int, default=42, help="Random seed of the demo data.")
    parser.add_argument(
        "--client",
        choices=("auto", "python", "wrk"),
        default="auto",
        help="Load generator: wrk if on PATH (auto), or the built-in asyncio client.",
    )
    parser.add_argument(
        "--order-by",
        choices=("CREATED_AT_DESC", "CREATED_AT_ASC", "NAME_ASC", "NAME_DESC"),
        default=None,
        help="Variant: add `orderBy` to the customers field (default: the query exactly as specified).",
    )
    parser.add_argument(
        "--settle", type=float, default=60, help="Seconds to wait at most for the machine to be idle before a run."
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="Embedded PostgreSQL/Redis data (default bench/.data)."
    )
    parser.add_argument("--reseed", action="store_true", help="Delete the data directory first and seed afresh.")
    parser.add_argument(
        "--rounds", type=int, default=1, help="Alternate the targets this many times and keep each one's best round."
    )
    parser.add_argument("--cooldown", type=float, default=2, help="Seconds to idle between targets.")
    args = parser.parse_args(argv)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    if args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: wrk is not on PATH (Debian: apt-get install wrk)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reseed and args.data_dir.exists():
        shutil.rmtree(args.data_dir)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    logs = RESULTS_DIR / f"logs-{stamp}"
    token = issue_token(Settings(jwt_secret=JWT_SECRET), "bench@ledgerline.local", Role.OWNER, 24 * 3600)
    print(f"starting embedded PostgreSQL and Redis in {args.data_dir} …", flush=True)
    with embedded_services(args.data_dir) as services:
        customers = prepare_database(services.database_url, args.customers, args.seed, args.data_dir)
        if customers != args.customers:
            print(f"note: the database has {customers} customers, not {args.customers} (--reseed to redo)")
        server_env = {
            **os.environ,
            "HOST": HOST,
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET": JWT_SECRET,
        }
        query = dashboard_query(args.order_by)
        response_file = RESULTS_DIR / f"dashboard-response-{stamp}.json"
        results: list[TargetResult] = []
        every_round: list[TargetResult] = []
        shape: dict[str, Any] | None = None
        identical: bool | None = None
        for workers in args.workers:
            print(f"\n{workers} worker(s), concurrency {args.concurrency}, {args.duration:g}s per target", flush=True)
            runs: dict[str, list[TargetResult]] = {target: [] for target in TARGETS}
            for round_number in range(1, args.rounds + 1):
                if args.rounds > 1:
                    print(f" round {round_number}/{args.rounds}", flush=True)
                port = free_port()
                env = {**server_env, "PORT": str(port)}
                log = logs / f"ledgerline-w{workers}-r{round_number}.log"
                with running_server(ledgerline_argv(workers), env, port, log) as pid:
                    real = post_query(port, token, query)
                    if shape is None:
                        response_file.write_text(json.dumps(real))
                        shape = shape_of(real)
                        print(f"  response shape: {json.dumps(shape)}", flush=True)
                    runs["ledgerline"].append(measure("ledgerline", workers, pid, port, token, args))
                time.sleep(args.cooldown)
                port = free_port()
                env = {
                    **os.environ,
                    "BENCH_BASELINE_RESPONSE": str(response_file),
                    "BENCH_BASELINE_CUSTOMERS": str(customers),
                }
                log = logs / f"baseline-w{workers}-r{round_number}.log"
                with running_server(baseline_argv(workers, port), env, port, log) as pid:
                    if identical is None:
                        identical = post_query(port, token, query) == json.loads(response_file.read_text())
                        print(f"  baseline response identical to Ledgerline's: {'yes' if identical else 'NO'}")
                    runs["baseline"].append(measure("baseline", workers, pid, port, token, args))
                time.sleep(args.cooldown)
            # other people's work on a shared machine only ever slows a run down: keep each target's best round
            ledgerline, baseline = (max(runs[t], key=lambda r: r.load.requests_per_second) for t in TARGETS)
            if baseline.load.requests_per_second:
                ledgerline.ratio_to_baseline = ledgerline.load.requests_per_second / baseline.load.requests_per_second
            results += [ledgerline, baseline]
            every_round += [run for target in TARGETS for run in runs[target]]

    print_table(results)
    for result in results:
        if result.ratio_to_baseline is not None:
            verdict = "meets" if result.ratio_to_baseline >= 0.75 else "is below"
            print(
                f"{result.workers} worker(s): Ledgerline at {100 * result.ratio_to_baseline:.0f}% of the baseline's "
                f"req/s {verdict} the 75% target"
            )
    out = RESULTS_DIR / f"dashboard-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "dashboard",
                "started_at": stamp,
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "commit": git_commit(),
                "ledgerline_source": str(ledgerline_source()),
                "query": query,
                "settings": {
                    "duration_s": args.duration,
                    "warmup_s": args.warmup,
                    "concurrency": args.concurrency,
                    "workers": args.workers,
                    "client": args.client,
                    "rounds": args.rounds,
                    "customers_in_database": customers,
                },
                "machine": machine(),
                "response_shape": shape,
                "baseline_response_identical": identical,
                "results": [{**asdict(r), **r.row()} for r in results],
                "every_round": [{**asdict(r), **r.row()} for r in every_round],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
