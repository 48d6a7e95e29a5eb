"""The one typed settings object, read from ``KERVAN_*`` environment variables (and ``.env``).

Validated once at start-up: an invalid value stops the process with one message per bad key.
List settings take comma-separated values, as the original design's ``.env`` files do.

``Settings`` is composed of parts: the foundation's fields below, and each feature's part
defined next to the feature (``service/<feature>/settings.py``: ``RateLimitSettings``,
``QueueSettings``, ...). Every field keeps its flat name (``settings.queue_max_attempts``,
``KERVAN_QUEUE_MAX_ATTEMPTS``). A feature may type what it reads as its own part
(``def from_settings(settings: QueueSettings)``): every ``Settings`` object is one of each part.
Checks that span parts live here.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.admins.settings import AdminSettings
from service.ads.settings import AdsSettings
from service.backends.redis_url import parse_redis_url
from service.cache.settings import CacheSettings
from service.consent.settings import ConsentSettings
from service.images.settings import ImagesSettings
from service.overload.settings import DegradeSettings
from service.queue.settings import QueueSettings
from service.ratelimit.settings import RateLimitSettings
from service.rtc.settings import RtcSettings
from service.settings_types import CommaList, IpNetwork, Network
from service.speculation.settings import SpeculationSettings
from service.support.settings import SupportSettings
from service.telegram.settings import TelegramSettings
from service.tracking.settings import TrackingSettings
from service.whatsapp.settings import WhatsAppSettings

__all__ = [
    "DEV_COOKIE_SECRET",
    "MIN_COOKIE_SECRET_BYTES",
    "AdminSettings",
    "AdsSettings",
    "CacheSettings",
    "CommaList",
    "ConsentSettings",
    "FoundationSettings",
    "ImagesSettings",
    "IpNetwork",
    "Network",
    "QueueSettings",
    "RateLimitSettings",
    "RtcSettings",
    "Settings",
    "SettingsError",
    "SpeculationSettings",
    "TelegramSettings",
    "WhatsAppSettings",
    "load_settings",
]

MIN_COOKIE_SECRET_BYTES = 32
# Only for development; production refuses it (see _check_combination).
DEV_COOKIE_SECRET = "development-only-cookie-secret-change-me!"  # noqa: S105


def _origin(value: str) -> str:
    """Normalise an origin to ``scheme://host[:port]``; anything with a path is refused."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} must be an origin only (scheme://host[:port])")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = parts.port
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


class FoundationSettings(BaseModel):
    """Database, Redis, HTTP serving, security and logging: what every feature stands on."""

    env: Literal["development", "production"] = Field(
        default="development", description="`production` enables HSTS and strict secret checks."
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///./var/kervan.db",
        description="SQLAlchemy URL: `sqlite+aiosqlite:///file` or `mariadb+aiomysql://u:p@h/db`.",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200, description="MariaDB pool size.")
    gc_full_collect_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="A server or worker process runs a full garbage collection this often "
        "instead of whenever CPython decides (each one pauses it, ~100 ms with 1,000 WebSocket "
        "clients); "
        "0: CPython's own policy.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Unset: in-process backends (embedded). Set: Redis 7.0 or later (scaled); "
        "a Redis Cluster as `redis+cluster://host:port,host:port,...`.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="The `redis://` URL names one node of a Redis Cluster (the client finds the "
        "others); `redis+cluster://` URLs need no switch.",
    )
    redis_namespace: str = Field(
        default="kervan",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Prefix of every Redis key, so deployments can share a server.",
    )
    redis_pool_size: int = Field(
        default=50, ge=1, le=10_000, description="Redis connections per process (blocking pool)."
    )
    redis_timeout_seconds: float = Field(
        default=2.0, gt=0, le=60, description="Redis connect/read timeout and pool wait."
    )
    public_origin: str = Field(
        default="http://127.0.0.1:8000", description="The site origin used in generated links."
    )
    allowed_origins: CommaList[str] = Field(
        default=[], description="CORS allow-list, exact origins, comma-separated."
    )
    metrics_allow: CommaList[IpNetwork] = Field(
        default_factory=lambda: [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ],
        description="Client networks allowed to read `/metrics`.",
    )
    metrics_token: str | None = Field(
        default=None, description="Bearer token that also opens `/metrics` from anywhere."
    )
    cookie_secret: str = Field(
        default=DEV_COOKIE_SECRET,
        description="HMAC key for cookies and signed tokens; >= 32 bytes in production.",
    )
    trusted_proxies: CommaList[IpNetwork] = Field(
        default=[], description="Proxies whose `X-Forwarded-For` is believed."
    )
    admin_api_key: str | None = Field(
        default=None, description="Key for `/admin/*` (Bearer or `X-API-Key`); unset = disabled."
    )
    host: str = Field(default="127.0.0.1", description="Address `kervan serve` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `kervan serve` binds.")
    workers: int = Field(
        default=1, ge=1, le=256, description="granian worker processes (>1 needs Redis+MariaDB)."
    )
    threads: int = Field(default=1, ge=1, le=64, description="granian runtime threads.")
    backlog: int = Field(default=1024, ge=16, le=65535, description="Listen backlog.")
    server_interface: Literal["asgi", "rsgi"] = Field(
        default="asgi",
        description="granian's interface for `kervan serve`: `asgi`, or `rsgi` (hot GET routes "
        "answered without ASGI; WebSocket close codes do not reach clients).",
    )
    http_header_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=60,
        description="A connection that has not sent a whole request head this long after it "
        "opened or after its last response (idle or slow) is closed.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="`json` (one object per line) or `console` (short human lines); unset = "
        "console when stderr is a terminal and env is development, else json.",
    )
    worker_heartbeat_max_age_seconds: float = Field(
        default=30.0, gt=0, description="`/ready` fails when no worker beat within this."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest JSON request body accepted."
    )
    data_dir: Path = Field(default=Path("./var"), description="Folder for files kervan writes.")

    @field_validator("allowed_origins")
    @classmethod
    def _normalise_origins(cls, value: list[str]) -> list[str]:
        return [_origin(v) for v in value]

    @field_validator("public_origin")
    @classmethod
    def _normalise_public_origin(cls, value: str) -> str:
        return _origin(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in ("sqlite+aiosqlite", "mariadb+aiomysql", "mysql+aiomysql"):
            raise ValueError(
                "must start with sqlite+aiosqlite://, mariadb+aiomysql:// or mysql+aiomysql://"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parse_redis_url(value)  # its error says what is wrong with the URL
        return value

    @model_validator(mode="after")
    def _check_redis_cluster(self) -> Self:
        if self.redis_url is not None:
            try:
                parse_redis_url(self.redis_url, cluster=self.redis_cluster)
            except ValueError as error:
                raise ValueError(f"redis_url: {error} (KERVAN_REDIS_CLUSTER is set)") from None
        return self

    @field_validator("log_format", mode="before")
    @classmethod
    def _empty_log_format(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when every Redis-backed interface runs in-process."""
        return self.redis_url is None


# pydantic orders the fields (and runs the model validators) from the last base to the first,
# so the parts are listed in reverse: the foundation's fields come first, support's last.
class Settings(
    CacheSettings,
    DegradeSettings,
    AdsSettings,
    TrackingSettings,
    RtcSettings,
    SupportSettings,
    AdminSettings,
    ImagesSettings,
    WhatsAppSettings,
    TelegramSettings,
    QueueSettings,
    ConsentSettings,
    SpeculationSettings,
    RateLimitSettings,
    FoundationSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(
        env_prefix="KERVAN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    @model_validator(mode="after")
    def _check_queue_backend(self) -> Self:
        if self.queue_backend == "redis" and self.redis_url is None:
            raise ValueError("queue_backend: 'redis' needs KERVAN_REDIS_URL")
        return self

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        problems: list[str] = []
        weak_secret = (
            len(self.cookie_secret.encode()) < MIN_COOKIE_SECRET_BYTES
            or self.cookie_secret == DEV_COOKIE_SECRET
        )
        if self.env == "production" and weak_secret:
            problems.append(
                f"cookie_secret: must be set to at least {MIN_COOKIE_SECRET_BYTES} bytes "
                "of secret in production"
            )
        if self.workers > 1 and self.redis_url is None:
            problems.append(
                "workers: more than one worker process needs KERVAN_REDIS_URL; the embedded "
                "in-process backends (rate limits, queues, live state) cannot be shared "
                "between processes"
            )
        if self.workers > 1 and self.is_sqlite:
            problems.append(
                "workers: more than one worker process needs a server database "
                "(KERVAN_DATABASE_URL=mariadb+aiomysql://...), not the embedded SQLite file"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self


#: The parts ``Settings`` is made of, in the order of its fields (and of the settings table).
SETTINGS_PARTS: tuple[type[BaseModel], ...] = tuple(
    base
    for base in reversed(Settings.__mro__)
    if issubclass(base, BaseModel) and base.__module__.startswith("service.")
)


class SettingsError(Exception):
    """Raised with one human-readable line per bad setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise ``SettingsError`` naming every bad key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            loc = str(err["loc"][0]) if err["loc"] else ""
            msg = err["msg"].removeprefix("Value error, ")
            if loc:
                line = f"KERVAN_{loc.upper()}: {msg}"
                if line not in lines:
                    lines.append(line)
            else:
                for problem in msg.splitlines():
                    key, _, text = problem.partition(": ")
                    lines.append(f"KERVAN_{key.upper()}: {text}")
        raise SettingsError(lines) from None
