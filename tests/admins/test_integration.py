"""What other code relies on: the admin of a WebSocket connection, the facility's
``authenticate_token``, failing closed when the lockout store is down, the API description,
and the settings' checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.requests import HTTPConnection

from core.errors import StateBackendError
from service.admins.facility import AdminAuth
from service.auth import AdminAuthenticator, admin_from_connection
from service.ratelimit.lockouts import Lockouts
from service.settings import SettingsError, load_settings
from tests.admins.conftest import ADMIN_KEY, AdminRig


def websocket(rig: AdminRig, *headers: tuple[str, str], query: str = "") -> HTTPConnection:
    scope = {
        "type": "websocket",
        "app": rig.client.app,  # type: ignore[attr-defined]
        "path": "/ws/support",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("192.0.2.44", 5555),
    }
    return HTTPConnection(scope)


async def test_the_admin_of_a_websocket_connection(rig: AdminRig) -> None:
    admin = await rig.add("alice", language="de")
    login = await rig.login("alice")
    token = login["token"]

    by_cookie = await admin_from_connection(websocket(rig, ("cookie", f"kervan_admin={token}")))
    assert by_cookie is not None
    assert (by_cookie.id, by_cookie.method, by_cookie.admin_id) == ("alice", "session", admin.id)
    assert by_cookie.language == "de" and by_cookie.session_id == login["session"]["id"]
    by_header = await admin_from_connection(websocket(rig, ("authorization", f"Bearer {token}")))
    assert by_header == by_cookie
    # A token the handler read itself (query value or first frame) decides alone.
    assert await admin_from_connection(websocket(rig), token=token) == by_cookie
    assert await admin_from_connection(websocket(rig), token="x" * 43) is None
    machine = await admin_from_connection(websocket(rig), token=ADMIN_KEY)
    assert machine is not None and machine.method == "api_key"
    assert await admin_from_connection(websocket(rig)) is None

    auth = rig.runtime.facility(AdminAuth)
    assert rig.runtime.facility(AdminAuthenticator) is auth
    assert await auth.authenticate_token(token) == by_cookie
    assert await auth.authenticate_token("not a token") is None


async def test_verification_fails_closed_when_the_lockout_store_is_down(
    rig: AdminRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.add("alice")
    code = await rig.request_code("alice")

    async def down(self: Lockouts, rule_name: str, key: str) -> Any:
        raise StateBackendError("connection refused")

    monkeypatch.setattr(Lockouts, "status", down)
    answer = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
    assert answer.status_code == 503
    assert answer.json()["error"]["details"] == {"component": "redis"}
    assert await rig.audit("admin.session.created") == []
    monkeypatch.undo()
    # The code was not spent by the refused attempt.
    again = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
    assert again.status_code == 200


async def test_the_api_description_states_every_answer(rig: AdminRig) -> None:
    document = (await rig.client.get("/openapi.json")).json()
    paths = document["paths"]
    request = paths["/admin/otp/request"]["post"]
    assert set(request["responses"]) == {"202", "400", "413", "422", "429", "503"}
    assert "security" not in request
    verify = paths["/admin/otp/verify"]["post"]
    assert set(verify["responses"]) == {"200", "400", "401", "413", "422", "429", "503"}
    body = document["components"]["schemas"]["OtpVerifyIn"]["properties"]
    assert body["code"]["pattern"] == "^[0-9]{6}$"
    assert body["admin"]["pattern"] == "^[a-z0-9._-]{2,64}$"
    revoke = paths["/admin/sessions/{session_id}"]["delete"]
    assert revoke["security"] == [{"adminKey": []}]
    assert revoke["parameters"][0]["schema"]["pattern"] == "^[A-Za-z0-9_-]{16}$"
    assert "404" in revoke["responses"] and "422" not in revoke["responses"]
    assert set(paths["/admin/sessions"]) == {"get", "delete"}
    assert paths["/admin/sessions"]["delete"]["security"] == [{"adminKey": []}]
    assert "security" not in paths["/admin/logout"]["post"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"admin_session_refresh_seconds": 3600, "admin_session_ttl_seconds": 3600},
            "SESSION_REFRESH",
        ),
        ({"admin_otp_ttl_seconds": 5}, "OTP_TTL"),
        ({"admin_default_language": "fr"}, "DEFAULT_LANGUAGE"),
    ],
)
def test_bad_settings_name_their_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, **overrides)
    assert any(line.startswith(f"KERVAN_ADMIN_{key}") for line in error.value.lines)


def test_defaults(make_settings: Callable[..., Any]) -> None:
    settings = make_settings()
    assert settings.admin_otp_ttl_seconds == 300
    assert settings.admin_session_ttl_seconds == 12 * 3600
    assert settings.admin_session_refresh_seconds == 60
    assert settings.admin_default_language == "tr"
