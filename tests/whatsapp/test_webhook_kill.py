"""A real ``kervan serve`` SIGKILLed between storing a burst of webhooks and processing them.

The test seam of ``service/whatsapp/testing.py`` holds processing while a file exists in the
data folder (development only), so the kill lands deterministically after every delivery of
the second burst was stored (committed, ``received``) and before any was processed. The server
is killed whole (its process group: the granian master and its worker), started again, and:

- every delivery that got a 200 (the first burst) is processed exactly once;
- the start-up recovery processes every stored delivery of the second burst, before Meta
  redelivers anything;
- Meta's redeliveries of the second burst (it never got a 200 for them) are duplicates:
  every message exists once, every unread counter counts it once, statuses stay monotonic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from core.whatsapp.signature import sign_body
from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages, wa_webhook_events
from tests.cli_process import spawn_kervan
from tests.services import free_port
from tests.whatsapp import payloads as p
from tests.whatsapp.dbutil import message_by_provider_id, rows, seed_outbound

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRET = "kill-test-app-secret"
CUSTOMERS = 8
FIRST_BURST = 24
SECOND_BURST = 32


class Server:
    """``kervan serve --migrate`` in a process group of its own (so SIGKILL takes the granian
    worker down with its master, as a crash of the container would)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self._fh = log.open("a")
        self.proc = spawn_kervan(
            ["serve", "--migrate"],
            cwd=log.parent,
            env={**env, "KERVAN_PORT": str(self.port)},
            log=self._fh,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await client.get("/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError("the server did not start:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._fh.close()


def customer(n: int) -> str:
    return f"90536{n % CUSTOMERS:07d}"


def delivery(burst: int, n: int) -> bytes:
    wa_id = customer(n)
    return orjson.dumps(
        p.inbound(wa_id, f"Müşteri {n % CUSTOMERS}", p.text(wa_id, f"wamid.K{burst}.{n}", "selam"))
    )


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"X-Hub-Signature-256": sign_body(SECRET, body), "Content-Type": "application/json"}
    return await client.post("/webhooks/wa", content=body, headers=headers)


async def scalar(db: Database, query: Any) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def wait_for(db: Database, query: Any, expected: int, what: str, server: Server) -> None:
    deadline = time.monotonic() + 30
    while (value := await scalar(db, query)) != expected:
        assert time.monotonic() < deadline, (
            f"{what}: {value} != {expected}\n" + server.log.read_text()[-3000:]
        )
        await asyncio.sleep(0.05)


def received() -> Any:
    return select(func.count()).where(wa_webhook_events.c.state == "received")


async def test_kill_between_storing_and_processing_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    hold = tmp_path / "hold-processing"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
    env.update(
        KERVAN_HOST="127.0.0.1",
        KERVAN_WORKERS="1",
        KERVAN_DATABASE_URL=database_url,
        KERVAN_DATA_DIR=str(data),
        KERVAN_WHATSAPP_TEST_HOLD_FILE=str(hold),
        KERVAN_WHATSAPP_APP_SECRET=SECRET,
        KERVAN_RATELIMIT_DEFAULT_POLICY="",
        KERVAN_LOG_LEVEL="INFO",
        KERVAN_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    db = Database(database_url)
    await seed_outbound(db, "wamid.KILL.OUT", wa_id="905369999999")
    first = [delivery(1, n) for n in range(FIRST_BURST)]
    first.append(
        orjson.dumps(p.statuses(p.status("wamid.KILL.OUT", "delivered", ts=1_700_000_200)))
    )
    second = [delivery(2, n) for n in range(SECOND_BURST)]
    second.append(orjson.dumps(p.statuses(p.status("wamid.KILL.OUT", "read", ts=1_700_000_300))))
    second.append(delivery(1, 0))  # a redelivery of an acknowledged message, too
    servers: list[Server] = []
    try:
        server = Server(env, tmp_path / "server1.log")
        servers.append(server)
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            answers = await asyncio.gather(*(post(client, body) for body in first))
            assert [r.status_code for r in answers] == [200] * len(first)

            hold.touch()  # processing stops before its next group; storing goes on
            pending = [asyncio.create_task(post(client, body)) for body in second]
            await wait_for(db, received(), len(second), "second burst stored", server)
            assert await scalar(db, select(func.count()).select_from(wa_webhook_events)) == len(
                first
            ) + len(second)
            assert not any(task.done() for task in pending)  # nobody got an answer yet
            server.kill()
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(o, httpx.TransportError) for o in outcomes), outcomes

        hold.unlink()
        server = Server(env, tmp_path / "server2.log")
        servers.append(server)
        await server.ready()
        # The start-up recovery processes what was stored, before any redelivery.
        await wait_for(db, received(), 0, "recovery of the second burst", server)
        stored = {m.provider_id for m in await rows(db, crm_messages)}
        assert {f"wamid.K2.{n}" for n in range(SECOND_BURST)} <= stored
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            # Counted once the recovery's chunk returns, just after its commit made the rows
            # "processed": read until the count settles, then it must be exactly the burst.
            expected = f"kervan_whatsapp_webhooks_recovered_total {float(len(second))}"
            for _ in range(200):
                metrics = (await client.get("/metrics")).text
                if expected in metrics:
                    break
                await asyncio.sleep(0.05)
            counted = [
                line
                for line in metrics.splitlines()
                if line.startswith("kervan_whatsapp_webhooks_recovered_total")
            ]
            assert counted == [expected]
            # Meta redelivers everything it got no 200 for.
            again = await asyncio.gather(*(post(client, body) for body in second))
        assert [r.status_code for r in again] == [200] * len(second)
        assert sum(r.json()["messages"] for r in again) == 0
    finally:
        for running in servers:
            running.stop()

    try:
        inbound = [m for m in await rows(db, crm_messages) if m.direction == "in"]
        ids = [m.provider_id for m in inbound]
        assert len(ids) == len(set(ids)) == FIRST_BURST + SECOND_BURST
        expected = {customer(n): 0 for n in range(CUSTOMERS)}
        for n in range(FIRST_BURST):
            expected[customer(n)] += 1
        for n in range(SECOND_BURST):
            expected[customer(n)] += 1
        contacts = {c.id: c.wa_id for c in await rows(db, crm_contacts)}
        unread = {contacts[c.contact_id]: c.unread for c in await rows(db, crm_convos)}
        assert {wa: unread[wa] for wa in expected} == expected
        out = await message_by_provider_id(db, "wamid.KILL.OUT")
        assert out.status == "read"
        states = [e.state for e in await rows(db, wa_webhook_events)]
        assert states == ["processed"] * (len(first) + 2 * len(second))
    finally:
        await db.dispose()
