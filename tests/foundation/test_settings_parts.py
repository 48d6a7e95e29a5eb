"""Settings composed of per-feature parts: same names, same validation, one comma-list type."""

from __future__ import annotations

import ast
import ipaddress
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from service.admins.settings import AdminSettings
from service.ads.settings import AdsSettings
from service.cache.settings import CacheSettings
from service.cli import _comment_descriptions, settings_table
from service.consent.settings import ConsentSettings
from service.images.settings import ImagesSettings
from service.overload.settings import DegradeSettings
from service.queue.settings import QueueSettings
from service.ratelimit.settings import RateLimitSettings
from service.rtc.settings import RtcSettings
from service.settings import (
    SETTINGS_PARTS,
    FoundationSettings,
    Settings,
    SettingsError,
    load_settings,
)
from service.speculation.settings import SpeculationSettings
from service.support.settings import SupportSettings
from service.telegram.settings import TelegramSettings
from service.tracking.settings import TrackingSettings
from service.whatsapp.settings import WhatsAppSettings

ROOT = Path(__file__).resolve().parents[2]
FEATURES = (
    "ratelimit",
    "speculation",
    "consent",
    "queue",
    "telegram",
    "whatsapp",
    "images",
    "admins",
    "support",
    "rtc",
    "tracking",
    "ads",
    "overload",
    "cache",
)
PARTS: dict[type[BaseModel], str] = {
    FoundationSettings: "",
    RateLimitSettings: "ratelimit_",
    SpeculationSettings: "speculation_",
    ConsentSettings: "consent_",
    QueueSettings: "queue_",
    TelegramSettings: "telegram_",
    WhatsAppSettings: "whatsapp_",
    ImagesSettings: "images_",
    AdminSettings: "admin_",
    SupportSettings: "support_",
    RtcSettings: "rtc_",
    TrackingSettings: "tracking_",
    AdsSettings: "ads_",
    DegradeSettings: "degrade_",
    CacheSettings: "cache_",
}


def test_settings_is_every_part_in_order() -> None:
    assert SETTINGS_PARTS[:-1] == tuple(PARTS)
    assert SETTINGS_PARTS[-1] is Settings
    expected = [name for part in PARTS for name in part.model_fields]
    assert list(Settings.model_fields) == expected  # the README table keeps its order
    for part, prefix in PARTS.items():
        if prefix:
            assert all(name.startswith(prefix) for name in part.model_fields), part
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert all(isinstance(s, part) for part in PARTS)  # a feature may type it as its part


def test_flat_names_environment_and_overrides_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERVAN_QUEUE_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("KERVAN_TELEGRAM_LANGUAGE", "de")
    monkeypatch.setenv("KERVAN_IMAGES_WIDTHS", "640, 320,640")
    s = load_settings(_env_file=None)
    assert s.queue_max_attempts == 7
    assert s.telegram_language == "de"
    assert s.images_widths == [320, 640]
    assert Settings(_env_file=None, queue_max_attempts=3).queue_max_attempts == 3  # type: ignore[call-arg]
    assert load_settings(_env_file=None, speculation_steps=9).speculation_steps == 9


def test_every_environment_variable_name_is_unchanged() -> None:
    # The names as they were before the split (a sample from every part, first and last).
    for name in (
        "KERVAN_ENV",
        "KERVAN_DATA_DIR",
        "KERVAN_RATELIMIT_POLICIES",
        "KERVAN_RATELIMIT_REDIS_MAX_INFLIGHT",
        "KERVAN_SPECULATION_SEGMENTS",
        "KERVAN_SPECULATION_SESSION_TTL_SECONDS",
        "KERVAN_CONSENT_TOKEN_SECRET",
        "KERVAN_CONSENT_BANNER_HISTORY",
        "KERVAN_QUEUE_BACKEND",
        "KERVAN_QUEUE_WHATSAPP_PACING",
        "KERVAN_TELEGRAM_BOT_TOKEN",
        "KERVAN_TELEGRAM_FALLBACK_WEBHOOK_URL",
        "KERVAN_WHATSAPP_APP_SECRET",
        "KERVAN_WHATSAPP_PENDING_STATUS_RETENTION_DAYS",
        "KERVAN_IMAGES_DIR",
        "KERVAN_IMAGES_CACHE_SWEEP_SECONDS",
    ):
        assert f"| `{name}` |" in settings_table()


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("allowed_origins", " https://A.example , ,http://b.example:8080", None),
        ("speculation_segments", "tr-m, en-d", ["tr-m", "en-d"]),
        ("speculation_score_buckets", "0.5,0.1", [0.5, 0.1]),
        ("consent_region_ttls", "FR.analytics=13mo, US-CA.ads=90d", None),
        ("images_widths", "320,640", [320, 640]),
        ("images_source_hosts", "", []),
        ("trusted_proxies", "10.0.0.5/8, ::1", None),
        ("metrics_allow", "192.0.2.1", [ipaddress.ip_network("192.0.2.1/32")]),
    ],
)
def test_every_list_setting_takes_comma_separated_values(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str, expected: list[object] | None
) -> None:
    monkeypatch.setenv(f"KERVAN_{field.upper()}", raw)
    from_env = getattr(load_settings(_env_file=None), field)
    from_kwarg = getattr(load_settings(_env_file=None, **{field: raw}), field)
    assert from_env == from_kwarg
    if expected is not None:
        assert from_env == expected
    if field == "trusted_proxies":
        assert from_env == [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    if field == "allowed_origins":
        assert from_env == ["https://a.example", "http://b.example:8080"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"metrics_allow": "127.0.0.1,not-a-net"}, "KERVAN_METRICS_ALLOW"),
        ({"images_widths": "320,wide"}, "KERVAN_IMAGES_WIDTHS"),
        ({"images_input_formats": "bmp"}, "KERVAN_IMAGES_INPUT_FORMATS"),
        ({"speculation_start_weights": "1,2,3"}, "KERVAN_SPECULATION_START_WEIGHTS"),
        ({"speculation_segments": "xx"}, "KERVAN_SPECULATION_SEGMENTS"),
        ({"consent_region_ttls": "FR.analytics=forever"}, "KERVAN_CONSENT_REGION_TTLS"),
        ({"ratelimit_default_policy": "nope"}, "KERVAN_RATELIMIT_DEFAULT_POLICY"),
        ({"queue_visibility_timeout_seconds": 5}, "KERVAN_QUEUE_VISIBILITY_TIMEOUT_SECONDS"),
        ({"queue_backend": "redis"}, "KERVAN_QUEUE_BACKEND"),
        ({"queue_telegram_pacing": "fast"}, "KERVAN_QUEUE_TELEGRAM_PACING"),
        ({"telegram_timezone": "Mars/Olympus"}, "KERVAN_TELEGRAM_TIMEZONE"),
        ({"telegram_base_url": "ftp://x"}, "KERVAN_TELEGRAM_BASE_URL"),
        ({"whatsapp_api_version": "21"}, "KERVAN_WHATSAPP_API_VERSION"),
        ({"log_format": "xml"}, "KERVAN_LOG_FORMAT"),
        ({"ads_token_key": "c2hvcnQ="}, "KERVAN_ADS_TOKEN_KEY"),
    ],
)
def test_part_validation_names_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, **overrides)
    assert any(line.startswith(key + ":") for line in caught.value.lines), caught.value.lines


def test_log_format_setting() -> None:
    assert load_settings(_env_file=None).log_format is None
    assert load_settings(_env_file=None, log_format="console").log_format == "console"
    assert load_settings(_env_file=None, log_format="json").log_format == "json"
    assert load_settings(_env_file=None, log_format="").log_format is None


def test_one_comma_splitting_validator() -> None:
    sources = [ROOT / "service" / "settings.py"] + [
        ROOT / "service" / feature / "settings.py" for feature in FEATURES
    ]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert "_split_commas" not in text and '.split(",")' not in text, path
        assert "NoDecode" not in text, path  # list settings use CommaList[...]


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("feature", FEATURES)
def test_feature_settings_are_leaf_modules(feature: str) -> None:
    allowed_roots = {"pydantic", "core", "__future__"} | set(sys.stdlib_module_names)
    for module in _imported_modules(ROOT / "service" / feature / "settings.py"):
        root = module.split(".")[0]
        assert root in allowed_roots or module == "service.settings_types", (feature, module)


def test_shared_types_module_is_a_leaf() -> None:
    for module in _imported_modules(ROOT / "service" / "settings_types.py"):
        root = module.split(".")[0]
        assert root in {"pydantic", "pydantic_settings", "__future__"} | set(
            sys.stdlib_module_names
        ), module


def test_table_reads_comments_from_every_part() -> None:
    comments = _comment_descriptions()
    # A leading comment (speculation), a trailing one (whatsapp) and one in every other part.
    assert comments["speculation_segments"].startswith("The segments served")
    assert comments["whatsapp_auto_reply"] == "keyword/FAQ responder on inbound messages"
    assert comments["queue_backend"].startswith('"auto": Redis Streams')
    assert comments["consent_token_secret"].startswith("Signs consent tokens")
    assert comments["images_max_pixels"] == "decompression-bomb guard"
    table = settings_table()
    assert "| `KERVAN_LOG_FORMAT` | (unset) |" in table
    assert table.index("KERVAN_LOG_LEVEL") < table.index("KERVAN_LOG_FORMAT")
    assert table.index("KERVAN_LOG_FORMAT") < table.index("KERVAN_WORKER_HEARTBEAT")
