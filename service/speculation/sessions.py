"""Each session's last page view, kept in the state backend to pair it with the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import orjson

from core.flows.events import PageView
from service.backends import Backends, keys


def _key(session_id: str) -> str:
    return f"{keys.FLOW_SESSION_LAST}:{session_id}"


async def last_views(backends: Backends, session_ids: Iterable[str]) -> dict[str, PageView]:
    ids = sorted(set(session_ids))
    if not ids:
        return {}
    raw = await backends.kv.get_many([_key(s) for s in ids])
    out: dict[str, PageView] = {}
    for session_id, value in zip(ids, raw, strict=True):
        if value is None:
            continue
        try:
            data = orjson.loads(value)
            out[session_id] = PageView(
                session_id, str(data["seg"]), str(data["path"]), float(data["ts"])
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # unreadable: the session simply starts over
    return out


#: Writes in flight at once (a batch may touch up to 1,000 sessions).
_CONCURRENCY = 64


async def remember(backends: Backends, views: Mapping[str, PageView], ttl: float) -> None:
    items = list(views.items())
    for start in range(0, len(items), _CONCURRENCY):
        await asyncio.gather(
            *(
                backends.kv.set(
                    _key(session_id),
                    orjson.dumps({"seg": view.seg, "path": view.path, "ts": view.ts}),
                    ttl=ttl,
                )
                for session_id, view in items[start : start + _CONCURRENCY]
            )
        )
