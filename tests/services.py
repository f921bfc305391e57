"""Session fixtures that start real backends on 127.0.0.1 in temp dirs, and stop them at the end.

* ``prometheus_incident``: backfills ``tests/prom_incident.py``'s OpenMetrics with
  ``promtool tsdb create-blocks-from openmetrics`` and serves it with a real ``prometheus``.
* ``pg_pool``: a PostgreSQL 15 cluster (run as the ``postgres`` user when we are root) and a
  pgbouncer in front of it with ``pool_size=2``, admin console open to user ``postgres``.

Import them into a test module (``from tests.services import prometheus_incident``). Each skips
with the reason when a binary is missing; scripts/install_services.sh installs them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.prom_incident import Truth, incident_openmetrics

PG_BIN = Path(os.environ.get("FAULTLINE_PG_BIN", "/usr/lib/postgresql/15/bin"))
TIMINGS: dict[str, float] = {}  # fixture name -> seconds to start (reported by the tests)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _need(binary: str | Path) -> str:
    found = shutil.which(str(binary))
    if not found:
        pytest.skip(f"{binary} is not installed (run scripts/install_services.sh)")
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass(frozen=True)
class PromServer:
    url: str
    truth: Truth


@pytest.fixture(scope="session")
def prometheus_incident() -> Iterator[PromServer]:
    prometheus, promtool = _need("prometheus"), _need("promtool")
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="faultline-prom-"))
    truth = Truth()
    (tmp / "incident.om").write_text(incident_openmetrics(truth), encoding="utf-8")
    (tmp / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n", encoding="utf-8")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp / "incident.om"), str(tmp / "data")],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 (the server writes to it for its whole life)
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
         "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/-/ready", proc, tmp / "prometheus.log")
        TIMINGS["prometheus_incident"] = time.perf_counter() - started
        yield PromServer(url, truth)
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s: {log.read_text(errors='replace')[-2000:]}")


@dataclass(frozen=True)
class PgPool:
    pg_port: int
    bouncer_port: int
    socket_dir: str
    pool_size: int

    def app_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.bouncer_port} dbname=app user=postgres application_name=faultline-test"

    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.bouncer_port} dbname=pgbouncer user=postgres"

    def pg_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} dbname=app user=postgres"


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = _need("runuser")
    return [runuser, "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def pg_pool() -> Iterator[PgPool]:
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            pytest.skip(f"PostgreSQL 15 ({PG_BIN / tool}) is not installed (run scripts/install_services.sh)")
    pgbouncer = _need("pgbouncer")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' system user to run PostgreSQL as")
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="faultline-pg-"))
    os.chmod(tmp, 0o755)
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    data, sock = tmp / "data", tmp
    pg_port, bouncer_port = free_port(), free_port()
    run = lambda cmd: subprocess.run(_as_postgres(cmd), check=True, capture_output=True, timeout=120)  # noqa: E731
    run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
    opts = (f"-c port={pg_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sock} -c fsync=off "
            "-c max_connections=30")
    run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(tmp / "pg.log"), "-o", opts, "-w", "-t", "60", "start"])
    bouncer: subprocess.Popen[bytes] | None = None
    try:
        run([str(PG_BIN / "psql"), "-h", str(sock), "-p", str(pg_port), "-U", "postgres", "-d", "postgres",
             "-c", "CREATE DATABASE app"])
        ini = tmp / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"app = host=127.0.0.1 port={pg_port} dbname=app pool_size=2\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {bouncer_port}\nunix_socket_dir = {sock}\n"
            "auth_type = trust\n"
            f"auth_file = {tmp / 'userlist.txt'}\n"
            "admin_users = postgres\npool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 50\n"
            f"logfile = {tmp / 'pgbouncer.log'}\nignore_startup_parameters = extra_float_digits\n",
            encoding="utf-8",
        )
        (tmp / "userlist.txt").write_text('"postgres" ""\n', encoding="utf-8")
        if os.geteuid() == 0:
            for path in (ini, tmp / "userlist.txt"):
                shutil.chown(path, "postgres", "postgres")
        bouncer = subprocess.Popen(
            _as_postgres([pgbouncer, str(ini)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(bouncer_port, bouncer)
        TIMINGS["pg_pool"] = time.perf_counter() - started
        yield PgPool(pg_port, bouncer_port, str(sock), pool_size=2)
    finally:
        if bouncer is not None:
            _stop(bouncer)
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pgbouncer not listening on {port} after {timeout_s}s")
