"""Settings validation at start-up, the CLI, and client-IP resolution."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.backends.memory import MemoryKeyspace, MemoryKeyValueStore
from service.clientip import resolve_client_ip
from service.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
    env.update(values)
    return env


def test_defaults_are_the_embedded_mode() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.embedded and s.is_sqlite
    assert s.database_url.startswith("sqlite+aiosqlite:///")


def test_comma_separated_lists_and_origin_normalisation() -> None:
    s = load_settings(
        _env_file=None,
        allowed_origins="https://Shop.example:443, http://localhost:3000",
        trusted_proxies="10.0.0.0/8,fd00::/8",
    )
    assert s.allowed_origins == ["https://shop.example", "http://localhost:3000"]
    assert s.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    ]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"allowed_origins": "https://a.example/path"}, "KERVAN_ALLOWED_ORIGINS"),
        ({"database_url": "postgresql://x"}, "KERVAN_DATABASE_URL"),
        ({"redis_url": "http://x"}, "KERVAN_REDIS_URL"),
        ({"trusted_proxies": "not-a-network"}, "KERVAN_TRUSTED_PROXIES"),
        ({"env": "production"}, "KERVAN_COOKIE_SECRET"),
        ({"env": "production", "cookie_secret": "short"}, "KERVAN_COOKIE_SECRET"),
        ({"workers": 4}, "KERVAN_WORKERS"),
    ],
)
def test_invalid_settings_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, **overrides)
    assert any(line.startswith(key + ":") for line in caught.value.lines), caught.value.lines


def test_scaled_mode_accepts_many_workers() -> None:
    s = load_settings(
        _env_file=None,
        workers=4,
        redis_url="redis://127.0.0.1:6379/0",
        database_url="mariadb+aiomysql://root@127.0.0.1/test",
    )
    assert s.workers == 4 and not s.embedded


def test_cli_stops_with_one_line_per_bad_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "settings"],
        cwd=tmp_path,
        env=_env(KERVAN_PORT="eighty", KERVAN_ENV="staging", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "KERVAN_PORT:" in result.stderr
    assert "KERVAN_ENV:" in result.stderr


def test_cli_prints_settings_with_secrets_masked(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "settings"],
        cwd=tmp_path,
        env=_env(KERVAN_ADMIN_API_KEY="do-not-print", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "KERVAN_ADMIN_API_KEY=***" in result.stdout
    assert "do-not-print" not in result.stdout


def test_cli_migrate_creates_the_embedded_database(tmp_path: Path) -> None:
    db_file = tmp_path / "var" / "k.db"
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        cwd=tmp_path,
        env=_env(KERVAN_DATABASE_URL=f"sqlite+aiosqlite:///{db_file}", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert db_file.exists()


PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.5", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"),  # spoofed left part
        ("10.0.0.5", "garbage", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
    ],
)
def test_client_ip_trusts_only_configured_proxies(
    peer: str, xff: str | None, expected: str
) -> None:
    headers = [] if xff is None else [(b"x-forwarded-for", xff.encode())]
    scope = {"type": "http", "client": (peer, 1234), "headers": headers}
    assert resolve_client_ip(scope, PROXIES) == expected


async def test_memory_keyspace_evicts_expired_keys_on_write() -> None:
    now = [0.0]
    space = MemoryKeyspace("t", clock=lambda: now[0])
    kv = MemoryKeyValueStore(space)
    for i in range(1000):
        await kv.set(f"k{i}", b"v", ttl=1.0)
    assert len(space) == 1000
    now[0] = 2.0
    await kv.set("fresh", b"v")
    assert len(space) == 1  # a flood of short-lived keys does not stay in memory
