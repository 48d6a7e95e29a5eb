"""A friendlier first run: ``kervan migrate`` says what it applied in one line, ``kervan serve``
prints where it serves and on what (checked through the CLI functions, granian never starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service import cli
from service.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _settings(**overrides: object) -> Settings:
    return load_settings(_env_file=None, **overrides)


def test_banner_of_the_embedded_default() -> None:
    banner = cli.serve_banner(_settings())
    lines = banner.splitlines()
    assert lines[0].startswith("kervan ") and "serving on http://127.0.0.1:8000" in lines[0]
    assert "  database  sqlite ./var/kervan.db" in lines
    assert any(line.startswith("  backends  in-process") for line in lines)
    assert "  queue     SQL outbox in the database" in lines
    assert any(line.startswith("  worker    embedded") for line in lines)
    for path in ("/docs", "/metrics", "/health", "/ready"):
        assert f"http://127.0.0.1:8000{path}" in banner
    assert not banner.lstrip().startswith("{")  # human-readable, not JSON


def test_banner_of_the_scaled_mode_masks_passwords() -> None:
    settings = _settings(
        host="0.0.0.0",
        port=9000,
        workers=4,
        redis_url="redis://:redis-pass@cache:6379/0",
        database_url="mariadb+aiomysql://kervan:db-pass@db:3306/kervan",
        queue_embedded_worker=False,
    )
    banner = cli.serve_banner(settings)
    assert "db-pass" not in banner and "redis-pass" not in banner
    assert "http://127.0.0.1:9000 (all interfaces)" in banner
    assert "4 worker processes" in banner
    assert "  database  mariadb kervan:***@db:3306/kervan" in banner
    assert "  backends  redis redis://:***@cache:6379/0 (namespace kervan)" in banner
    assert "  queue     Redis Streams" in banner
    assert "kervan worker" in banner.splitlines()[4]
    assert "http://127.0.0.1:9000/ready" in banner


def test_banner_follows_the_queue_settings() -> None:
    settings = _settings(redis_url="redis://cache:6379/0", queue_backend="sql")
    assert cli.queue_backend(settings) == "sql"
    assert not cli.worker_embedded(settings)  # Redis backends: a separate worker by default
    forced = _settings(queue_embedded_worker=True, redis_url="redis://cache/0")
    assert cli.worker_embedded(forced)
    assert cli.queue_backend(_settings()) == "sql"
    assert cli.queue_backend(_settings(redis_url="redis://cache/0")) == "redis"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:secret@h/1", "rediss://user:***@h/1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///run/redis.sock?db=0&password=secret", "unix:///run/redis.sock?db=0&password=***"),
    ],
)
def test_redis_urls_are_masked(url: str, shown: str) -> None:
    assert cli._mask_url(url) == shown


def test_serve_url_brackets_ipv6() -> None:
    assert cli.serve_url(_settings(host="::1", port=8080)) == "http://[::1]:8080"
    assert cli.serve_url(_settings(host="::")) == "http://[::1]:8000"


def test_migrate_summary() -> None:
    settings = _settings(database_url="sqlite+aiosqlite:///./var/kervan.db")
    assert (
        cli.migrate_summary(settings, [])
        == "kervan migrate: sqlite ./var/kervan.db: schema is up to date"
    )
    assert cli.migrate_summary(settings, ["0002_b", "0001_a"]) == (
        "kervan migrate: sqlite ./var/kervan.db: applied 0001_a, 0002_b (2 revisions)"
    )
    many = ["0001_a", "0004_d", "0002_b", "0003_c"]
    assert cli.migrate_summary(settings, many).endswith("applied 0001_a ... 0004_d (4 revisions)")


def _kervan(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
    clean.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_prints_one_line_not_alembic_chatter(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'k.db'}"
    first = _kervan(tmp_path, "migrate", KERVAN_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1, first.stderr
    assert lines[0].startswith(f"kervan migrate: sqlite {tmp_path / 'var' / 'k.db'}: applied 0001")
    assert lines[0].endswith(" revisions)")
    again = _kervan(tmp_path, "migrate", KERVAN_DATABASE_URL=url)
    assert again.returncode == 0, again.stderr
    assert again.stderr.strip().endswith(": schema is up to date")
    assert len(again.stderr.strip().splitlines()) == 1


def test_migrate_shows_alembic_at_debug(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    result = _kervan(tmp_path, "migrate", KERVAN_DATABASE_URL=url, KERVAN_LOG_LEVEL="DEBUG")
    assert result.returncode == 0, result.stderr
    assert "alembic.runtime.migration" in result.stderr


def test_migrate_failure_is_one_message(tmp_path: Path) -> None:
    url = "mariadb+aiomysql://nobody:pw@127.0.0.1:1/none"
    result = _kervan(tmp_path, "migrate", KERVAN_DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr.startswith("kervan migrate: ")
    assert "Traceback" not in result.stderr
