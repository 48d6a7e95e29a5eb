"""``kervan admin add|list|disable`` through the CLI's entry function, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from service import cli
from service.db import Database
from service.db.tables.foundation import audit_events


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> str:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    monkeypatch.setenv("KERVAN_DATABASE_URL", database_url)
    monkeypatch.delenv("KERVAN_ADMIN_DEFAULT_LANGUAGE", raising=False)
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["admin", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_disable(
    cli_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "list") == (
        0,
        "no admins yet: kervan admin add NAME --telegram-chat-id ID\n",
        "",
    )
    code, out, _ = run(capsys, "add", "alice", "--telegram-chat-id", "123456", "--language", "de")
    assert code == 0 and out.startswith("added admin alice (id ") and "language de" in out
    monkeypatch.setenv("KERVAN_ADMIN_DEFAULT_LANGUAGE", "en")
    code, out, _ = run(capsys, "add", "bob.ops", "--telegram-chat-id", "-1001234567890")
    assert code == 0 and "language en" in out  # the settings' default language
    monkeypatch.delenv("KERVAN_ADMIN_DEFAULT_LANGUAGE")
    code, out, _ = run(capsys, "add", "carol", "--telegram-chat-id", "@carol_ops")
    assert code == 0 and "language tr" in out

    code, out, err = run(capsys, "add", "alice", "--telegram-chat-id", "1")
    assert (code, out) == (1, "")
    assert err == "kervan admin add: an admin named 'alice' already exists\n"

    code, out, err = run(capsys, "disable", "bob.ops")
    assert code == 0 and out.startswith("disabled admin bob.ops")
    assert run(capsys, "disable", "bob.ops")[0] == 0  # already disabled: no change, no error
    code, _, err = run(capsys, "disable", "nobody")
    assert code == 1 and err == "kervan admin disable: no admin named 'nobody'\n"

    code, out, _ = run(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].split() == ["NAME", "LANGUAGE", "TELEGRAM", "CHAT", "STATUS", "CREATED"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert rows == {
        "alice": ["de", "123456", "active"],
        "bob.ops": ["en", "-1001234567890", "disabled"],
        "carol": ["tr", "@carol_ops", "active"],
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "Alice", "--telegram-chat-id", "1"], "admin names are 2-64 characters"),
        (["add", "a", "--telegram-chat-id", "1"], "admin names are 2-64 characters"),
        (["add", "x" * 65, "--telegram-chat-id", "1"], "admin names are 2-64 characters"),
        (["add", "api-key", "--telegram-chat-id", "1"], "the admin name 'api-key' is reserved"),
        (["add", "dave", "--telegram-chat-id", "12ab"], "a Telegram chat id is an integer"),
    ],
)
def test_invalid_input_is_refused_with_exit_2(
    cli_env: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"kervan admin add: {message}")
    assert run(capsys, "list")[1].startswith("no admins yet")


def test_an_unknown_language_is_an_argument_error(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["admin", "add", "erin", "--telegram-chat-id", "1", "--language", "fr"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fr'" in capsys.readouterr().err


def test_additions_and_disablings_are_audited(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "add", "alice", "--telegram-chat-id", "1")
    run(capsys, "disable", "alice")

    async def audit() -> list[Any]:
        db = Database(cli_env)
        try:
            async with db.connect() as conn:
                query = select(audit_events).order_by(audit_events.c.id)
                return list((await conn.execute(query)).all())
        finally:
            await db.dispose()

    rows = asyncio.run(audit())
    assert [(r.actor, r.action, r.subject) for r in rows] == [
        ("cli", "admin.account.created", "admin:alice"),
        ("cli", "admin.account.disabled", "admin:alice"),
    ]


def test_an_unmigrated_database_is_a_clear_error(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("KERVAN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    code, out, err = run(capsys, "list")
    assert (code, out) == (1, "")
    assert err.startswith("kervan admin list: database error: ")
    assert err.endswith("(has `kervan migrate` run on this database?)\n")
