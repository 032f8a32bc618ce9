"""Shared test fixtures: a real PostgreSQL server started from the local binaries.

``postgres_url`` starts one throw-away server per test session (Debian's
``postgresql`` package provides the binaries: ``apt-get install -y postgresql``). Set
``MODELYARD_SKIP_POSTGRES=1`` to skip the tests that need it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The e2e guard (tests that start servers are e2e: the quick loop starts none); pytester
# tests the guard itself.
pytest_plugins = ["_e2e", "pytester"]

_PG_USER = "modelyard"
_PG_DATABASE = "modelyard_test"
_INSTALL_HINT = (
    "install the PostgreSQL server (`apt-get install -y postgresql`), "
    "or set MODELYARD_SKIP_POSTGRES=1 to skip the tests that need it"
)


def _postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb and pg_ctl."""
    found = []
    for candidate in glob.glob("/usr/lib/postgresql/*/bin"):
        folder = Path(candidate)
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            major = folder.parent.name
            found.append((int(major) if major.isdigit() else 0, folder))
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the 'postgres' user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        pytest.fail(
            f"could not {what}: `{' '.join(command)}` exited {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}\n{server_log}"
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A ``postgresql+psycopg://`` URL of an empty database on a fresh local server."""
    if os.environ.get("MODELYARD_SKIP_POSTGRES") == "1":
        pytest.skip("MODELYARD_SKIP_POSTGRES=1")
    from _e2e import require_e2e  # imported here: pytest_plugins imports it first

    require_e2e("a PostgreSQL server")
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(f"no PostgreSQL server binaries (initdb, pg_ctl) found; {_INSTALL_HINT}")
    as_root = os.geteuid() == 0
    if as_root:
        try:
            import pwd

            server_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                f"running as root, but there is no 'postgres' user to run the server; "
                f"{_INSTALL_HINT}"
            )
    # Not under pytest's tmp_path: its parents are private to root, the server user
    # must reach this folder.
    base = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))
    data_dir, log_file = base / "data", base / "server.log"
    if as_root:
        os.chown(base, server_user.pw_uid, server_user.pw_gid)
    port = _free_port()
    _run(
        _as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                _PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        ),
        "create a PostgreSQL cluster",
    )
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{base}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "16MB",
        "max_connections": "60",
        "logging_collector": "off",
    }
    with open(data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\n# modelyard test server\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    pg_ctl = str(bin_dir / "pg_ctl")
    _run(
        _as_server_user(
            [pg_ctl, "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60", "start"]
        ),
        "start the PostgreSQL server",
        log_file,
    )
    try:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user=_PG_USER, dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f"CREATE DATABASE {_PG_DATABASE}")
        yield f"postgresql+psycopg://{_PG_USER}@127.0.0.1:{port}/{_PG_DATABASE}"
    finally:
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """A URL of a new, empty database on the session's PostgreSQL server."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return url.set(database=name).render_as_string(hide_password=False)
