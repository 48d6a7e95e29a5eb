"""TURN REST credentials (``core/rtc/turn.py``), ICE URLs (``core/rtc/ice.py``), the
``KERVAN_RTC_*`` settings and the answer built from them (``service/rtc/ice_servers.py``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from core.rtc.ice import parse_ice_url
from core.rtc.turn import Accepted, Refused, mint_credential, verify_credential
from service.rtc.ice_servers import ice_servers_answer
from service.settings import Settings, SettingsError, load_settings

NOW = 1_750_000_000.25
CURRENT = "current-secret-0123456789"
PREVIOUS = "previous-secret-012345678"
TURN_EU = {
    "urls": [
        "turn:turn-eu.example.com:3478?transport=udp",
        "turns:turn-eu.example.com:5349?transport=tcp",
    ],
    "region": "eu",
    "priority": 10,
}
STUN_EU = {"urls": ["stun:stun.example.com:3478"], "region": "eu", "priority": 20}
TURN_US = {"urls": ["turn:203.0.113.7?transport=tcp"], "region": "us", "priority": 10}
STUN_ASIA = {"urls": ["stun:[2001:db8::1]:3478"], "region": "asia", "priority": 5}


def _settings(**overrides: Any) -> Settings:
    return load_settings(_env_file=None, **overrides)


# ---------------------------------------------------------------- credentials


def test_a_credential_is_the_expiry_and_user_signed_with_hmac_sha1() -> None:
    made = mint_credential(CURRENT, "cu_0123abcd", now=NOW, ttl=3600)
    assert made.expires_at == 1_750_003_600  # whole seconds: the fraction of now is dropped
    assert made.username == "1750003600:cu_0123abcd"
    # Computed here independently, as coturn does: base64 of the raw HMAC-SHA1 digest.
    digest = hmac.new(CURRENT.encode(), made.username.encode(), hashlib.sha1).digest()
    assert made.credential == base64.b64encode(digest).decode()
    assert len(base64.b64decode(made.credential)) == 20
    assert verify_credential(made.username, made.credential, [CURRENT], now=NOW) == Accepted(
        "cu_0123abcd", 1_750_003_600, 0
    )


def test_a_credential_is_accepted_until_its_expiry_second_and_not_after() -> None:
    made = mint_credential(CURRENT, "ad_7", now=NOW, ttl=60)
    at_expiry = verify_credential(made.username, made.credential, [CURRENT], now=made.expires_at)
    assert isinstance(at_expiry, Accepted)
    after = verify_credential(made.username, made.credential, [CURRENT], now=made.expires_at + 1)
    assert after is Refused.EXPIRED
    # Moving the expiry in the username breaks the signature.
    stretched = f"{made.expires_at + 86_400}:ad_7"
    assert verify_credential(stretched, made.credential, [CURRENT], now=NOW) is (
        Refused.UNKNOWN_SECRET
    )


def test_rotation_any_accepted_secret_verifies_and_the_first_signs() -> None:
    by_previous = mint_credential(PREVIOUS, "cu_1", now=NOW, ttl=600)
    verdict = verify_credential(
        by_previous.username, by_previous.credential, [CURRENT, PREVIOUS], now=NOW
    )
    assert verdict == Accepted("cu_1", by_previous.expires_at, 1)
    # Once the previous secret is dropped, its credentials stop working.
    assert (
        verify_credential(by_previous.username, by_previous.credential, [CURRENT], now=NOW)
        is Refused.UNKNOWN_SECRET
    )
    foreign = mint_credential("someone-elses-secret-000", "cu_1", now=NOW, ttl=600)
    assert (
        verify_credential(foreign.username, foreign.credential, [CURRENT, PREVIOUS], now=NOW)
        is Refused.UNKNOWN_SECRET
    )
    settings = _settings(rtc_turn_secrets=f"{CURRENT},{PREVIOUS}", rtc_ice_servers=[TURN_EU])
    answer = ice_servers_answer(settings, "cu_1", now=NOW)["ice_servers"][0]
    signed = verify_credential(answer["username"], answer["credential"], [CURRENT], now=NOW)
    assert isinstance(signed, Accepted) and signed.secret_index == 0


@pytest.mark.parametrize(
    ("username", "credential"),
    [
        ("cu_1", "x"),  # no expiry
        ("soon:cu_1", "x"),
        ("1750003600:", "x"),  # no user
        ("1750003600:cu 1", "x"),
        ("1750003600:cu_1", "not base64 ∞"),
    ],
)
def test_malformed_or_unsigned_credentials_are_refused(username: str, credential: str) -> None:
    verdict = verify_credential(username, credential, [CURRENT], now=NOW)
    assert verdict in (Refused.MALFORMED, Refused.UNKNOWN_SECRET)
    if ":" not in username or not username.split(":")[0].isdigit():
        assert verdict is Refused.MALFORMED


@pytest.mark.parametrize(
    ("secret", "user", "ttl"), [("", "cu_1", 60), (CURRENT, "a:b", 60), (CURRENT, "cu_1", 0)]
)
def test_minting_refuses_what_no_turn_server_could_check(secret: str, user: str, ttl: int) -> None:
    with pytest.raises(ValueError):
        mint_credential(secret, user, now=NOW, ttl=ttl)


# ---------------------------------------------------------------- ICE URLs


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("stun:stun.example.com", ("stun", "stun.example.com", None, None, False)),
        ("stuns:stun.example.com:5349", ("stuns", "stun.example.com", 5349, None, False)),
        ("turn:192.0.2.1:3478?transport=udp", ("turn", "192.0.2.1", 3478, "udp", True)),
        ("turns:[2001:db8::1]:443?transport=tcp", ("turns", "[2001:db8::1]", 443, "tcp", True)),
        ("turn:turn.example.com", ("turn", "turn.example.com", None, None, True)),
    ],
)
def test_ice_urls_parse(url: str, parts: tuple[object, ...]) -> None:
    parsed = parse_ice_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.transport, parsed.is_turn) == parts


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://turn.example.com", "must start with stun:"),
        ("TURN:turn.example.com", "must start with stun:"),
        ("turn://turn.example.com:3478", "without //"),
        ("stun:stun.example.com?transport=udp", "takes no query"),
        ("turn:turn.example.com?transport=sctp", "?transport=udp or ?transport=tcp"),
        ("turn:turn.example.com?foo=bar", "?transport=udp or ?transport=tcp"),
        ("turn:user@turn.example.com", "no user info"),
        ("turn:turn.example.com:3478/path", "no user info, path"),
        ("turn:turn.example.com:0", "port '0'"),
        ("turn:turn.example.com:70000", "port '70000'"),
        ("turn:turn.example.com:", "port ''"),
        ("turn:2001:db8::1", "in brackets"),
        ("turn:[not-v6]:3478", "not an IPv6 address"),
        ("turn:300.1.1.1", "not an IPv4 address"),
        ("turn:bad_host.example", "not a host name"),
        ("turn:", "host is missing"),
        ("turn:" + "a" * 300, "longer than 256"),
    ],
)
def test_bad_ice_urls_are_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_ice_url(url)
    assert says in str(caught.value)


# ---------------------------------------------------------------- settings


def test_defaults_hand_out_nothing() -> None:
    settings = _settings()
    assert settings.rtc_ice_servers == [] and settings.rtc_turn_secrets == []
    assert settings.rtc_turn_ttl_seconds == 3600
    assert (settings.rtc_window_size, settings.rtc_retransmit_ms) == (256, 400)
    assert (settings.rtc_retransmit_max_ms, settings.rtc_call_ttl_seconds) == (5000, 14_400)
    assert settings.rtc_ring_timeout_seconds == 60
    answer = ice_servers_answer(settings, "cu_1", now=NOW)
    assert answer == {"ice_servers": [], "ttl_seconds": 3600, "expires_at": 1_750_003_600}


def test_ice_servers_and_secrets_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERVAN_RTC_ICE_SERVERS", json.dumps([TURN_EU, STUN_EU]))
    monkeypatch.setenv("KERVAN_RTC_TURN_SECRETS", f" {CURRENT} , {PREVIOUS}")
    monkeypatch.setenv("KERVAN_RTC_TURN_TTL_SECONDS", "600")
    settings = _settings()
    assert [s.region for s in settings.rtc_ice_servers] == ["eu", "eu"]
    assert settings.rtc_turn_secret_values == [CURRENT, PREVIOUS]
    assert settings.rtc_turn_ttl_seconds == 600
    # The effective settings never show a secret.
    dumped = json.dumps(settings.model_dump(mode="json"))
    assert CURRENT not in dumped and PREVIOUS not in dumped
    monkeypatch.setenv("KERVAN_RTC_ICE_SERVERS", "")
    assert _settings().rtc_ice_servers == []


def _error_lines(**overrides: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        _settings(**overrides)
    return caught.value.lines


@pytest.mark.parametrize(
    ("overrides", "key", "says"),
    [
        ({"rtc_ice_servers": "{not json"}, "KERVAN_RTC_ICE_SERVERS", "Invalid JSON"),
        ({"rtc_ice_servers": '{"urls": []}'}, "KERVAN_RTC_ICE_SERVERS", "valid list"),
        (
            {"rtc_ice_servers": [{**STUN_EU, "urls": ["http://stun.example.com"]}]},
            "KERVAN_RTC_ICE_SERVERS",
            "entry 1: urls: 'http://stun.example.com': must start with stun:",
        ),
        (
            {"rtc_ice_servers": [STUN_EU, {"urls": ["stun:a.example"], "priority": 1}]},
            "KERVAN_RTC_ICE_SERVERS",
            "entry 2: region: Field required",
        ),
        (
            {"rtc_ice_servers": [{**STUN_EU, "priority": -1}]},
            "KERVAN_RTC_ICE_SERVERS",
            "entry 1: priority:",
        ),
        (
            {"rtc_ice_servers": [{**STUN_EU, "region": "e" * 40}]},
            "KERVAN_RTC_ICE_SERVERS",
            "entry 1: region:",
        ),
        (
            {"rtc_ice_servers": [{**STUN_EU, "urls": []}]},
            "KERVAN_RTC_ICE_SERVERS",
            "entry 1: urls:",
        ),
        (
            {"rtc_ice_servers": [{**STUN_EU, "username": "static"}]},
            "KERVAN_RTC_ICE_SERVERS",
            "entry 1: username: Extra inputs are not permitted",
        ),
        ({"rtc_ice_servers": [STUN_EU] * 33}, "KERVAN_RTC_ICE_SERVERS", "at most 32"),
        ({"rtc_ice_servers": [TURN_EU]}, "KERVAN_RTC_TURN_SECRETS", "at least one secret"),
        (
            {"rtc_ice_servers": [TURN_EU], "rtc_turn_secrets": f"{CURRENT},short"},
            "KERVAN_RTC_TURN_SECRETS",
            "secret 2 has 5 bytes",
        ),
        ({"rtc_turn_ttl_seconds": 10}, "KERVAN_RTC_TURN_TTL_SECONDS", "greater than"),
        ({"rtc_turn_ttl_seconds": 10**6}, "KERVAN_RTC_TURN_TTL_SECONDS", "less than"),
        ({"rtc_window_size": 0}, "KERVAN_RTC_WINDOW_SIZE", "greater than"),
        ({"rtc_retransmit_ms": 5}, "KERVAN_RTC_RETRANSMIT_MS", "greater than"),
        (
            {"rtc_retransmit_ms": 1000, "rtc_retransmit_max_ms": 500},
            "KERVAN_RTC_RETRANSMIT_MAX_MS",
            "at least KERVAN_RTC_RETRANSMIT_MS",
        ),
        ({"rtc_call_ttl_seconds": 10}, "KERVAN_RTC_CALL_TTL_SECONDS", "greater than"),
        ({"rtc_ring_timeout_seconds": 601}, "KERVAN_RTC_RING_TIMEOUT_SECONDS", "less than"),
    ],
)
def test_bad_rtc_settings_name_their_key(overrides: dict[str, Any], key: str, says: str) -> None:
    lines = _error_lines(**overrides)
    assert any(line.startswith(f"{key}: ") and says in line for line in lines), lines


def test_stun_only_servers_need_no_secret() -> None:
    settings = _settings(rtc_ice_servers=[STUN_EU, STUN_ASIA])
    answer = ice_servers_answer(settings, "cu_1", now=NOW)
    assert all(set(entry) == {"urls", "region", "priority"} for entry in answer["ice_servers"])


# ---------------------------------------------------------------- the answer


def test_the_answer_is_ordered_by_priority_and_only_turn_entries_carry_credentials() -> None:
    settings = _settings(
        rtc_ice_servers=[STUN_EU, TURN_EU, TURN_US, STUN_ASIA],
        rtc_turn_secrets=CURRENT,
        rtc_turn_ttl_seconds=900,
    )
    answer = ice_servers_answer(settings, "ad_42", now=NOW)
    assert answer["ttl_seconds"] == 900 and answer["expires_at"] == 1_750_000_900
    servers = answer["ice_servers"]
    # Lower priority first; equal priorities keep the configured order (eu before us).
    assert [(s["region"], s["priority"]) for s in servers] == [
        ("asia", 5),
        ("eu", 10),
        ("us", 10),
        ("eu", 20),
    ]
    assert servers[1]["urls"] == TURN_EU["urls"]
    stun = [s for s in servers if s["urls"][0].startswith("stun")]
    turn = [s for s in servers if s["urls"][0].startswith("turn")]
    assert all("username" not in s and "credential" not in s for s in stun)
    assert {s["username"] for s in turn} == {"1750000900:ad_42"}
    for entry in turn:
        verdict = verify_credential(entry["username"], entry["credential"], [CURRENT], now=NOW)
        assert verdict == Accepted("ad_42", 1_750_000_900, 0)
