"""SIGTERM to a real ``kervan serve`` with a connected client: the client is told to reconnect
(``reconnect`` frame, then close 1012 with the reason), the process exits within the pod's
termination grace, and the client resumes on the other process without losing a message.

Two servers (A and B) share one Redis and one MariaDB as in ``test_ws_processes.py``; SIGTERM
goes to A's master only, as Kubernetes sends it to a container's first process.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.support.drain import CLOSE_REASON, CLOSE_SERVICE_RESTART
from tests.conftest import unique
from tests.services import ServiceState, service_url
from tests.support.procs import (
    Pair,
    drop_namespace,
    make_admin_token,
    running_pair,
    server_env,
)
from tests.support.test_drain import closed_with, told_to_reconnect

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRAIN_SECONDS = "2"


def termination_grace() -> float:
    """The API pods' terminationGracePeriodSeconds (what Kubernetes waits before SIGKILL)."""
    manifest = yaml.safe_load((ROOT / "k8s" / "base" / "api-deployment.yaml").read_text())
    return float(manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


@dataclass
class Shared:
    pair: Pair
    database_url: str
    redis_url: str
    namespace: str


@pytest.fixture
def shared(
    mariadb_server: ServiceState,
    redis_server: ServiceState,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shared]:
    database_url = service_url(mariadb_server)
    redis_url = service_url(redis_server)
    namespace = unique("kd")
    folder = tmp_path_factory.mktemp("drain")
    env = server_env(
        database_url=database_url,
        redis_url=redis_url,
        namespace=namespace,
        data_dir=folder / "data",
        support_sweep_seconds="0.1",
        support_drain_seconds=DRAIN_SECONDS,
    )
    try:
        with running_pair(env, folder) as pair:
            yield Shared(pair, database_url, redis_url, namespace)
    finally:
        drop_namespace(redis_url, namespace)


def delivered(frames: list[dict[str, Any]], seen: set[int]) -> int:
    """The last offset the client has every message up to (what it resumes after)."""
    seen |= {f["offset"] for f in frames if f["type"] == "chat:message"}
    last = 0
    while last + 1 in seen:
        last += 1
    return last


async def test_sigterm_moves_the_client_to_another_process_and_loses_nothing(
    shared: Shared,
) -> None:
    a, b = shared.pair.a, shared.pair.b
    name = unique("drain")[:64]
    token = await make_admin_token(shared.database_url, shared.redis_url, shared.namespace, name)
    texts = {1: "bir", 2: "iki"}
    async with b.desk.admin(token) as admin:
        async with a.desk.customer("Ayşe") as customer:
            room = customer.welcome["person"]
            resume = customer.welcome["resume"]
            await customer.send({"type": "queue:join"})
            epoch = (await customer.expect("room:joined", room=room))["epoch"]
            await admin.expect("room:joined", room=room)
            # The customer's own message is placed by its ack, the admin's comes as a message.
            seen = {(await customer.chat(room, texts[1]))["offset"]}
            await admin.chat(room, texts[2])
            seen.add((await customer.expect("chat:message", offset=2))["offset"])

            os.kill(a.proc.pid, signal.SIGTERM)
            # Said while A drains: the customer gets it on A or after resuming on B.
            texts[3] = "üç"
            assert (await admin.chat(room, texts[3]))["offset"] == 3

            told = await customer.expect("reconnect")
            told_to_reconnect(told)
            assert await closed_with(customer) == (CLOSE_SERVICE_RESTART, CLOSE_REASON)
            last = delivered(customer.frames, seen)
            assert last >= 2
        exit_code = await asyncio.to_thread(a.proc.wait, termination_grace())
        assert exit_code == 0, a.tail()
        assert "draining support connections" in a.tail(20_000)

        # Said while the customer is away, A gone and B serving.
        texts[4] = "dört"
        assert (await admin.chat(room, texts[4]))["offset"] == 4
        await asyncio.sleep(told["retry_after_ms"] / 1000)
        async with b.desk.customer(
            resume=resume, rooms={room: {"epoch": epoch, "offset": last}}
        ) as back:
            assert back.welcome["person"] == room
            first = await back.expect("resume")
            assert (first["recovered"], first["epoch"], first["last_offset"]) == (True, epoch, 4)
            missed = [await back.expect("chat:message") for _ in range(last + 1, 5)]
            assert [(m["offset"], m["text"]) for m in missed] == [
                (n, texts[n]) for n in range(last + 1, 5)
            ]
            await back.absent("chat:message", within=0.5)
            # And on, live, on B.
            await back.chat(room, "beş")
            assert (await admin.expect("chat:message", offset=5))["text"] == "beş"
            await admin.send({"type": "chat:end", "room": room})
            await back.expect("room:closed", room=room)
    assert b.alive
