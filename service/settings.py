"""The one typed settings object, read from ``KERVAN_*`` environment variables (and ``.env``).

Validated once at start-up: an invalid value stops the process with one message per bad key.
List settings take comma-separated values, as the original design's ``.env`` files do.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NetworkList = Annotated[list[Network], NoDecode]

MIN_COOKIE_SECRET_BYTES = 32
# Only for development; production refuses it (see _check_combination).
DEV_COOKIE_SECRET = "development-only-cookie-secret-change-me!"  # noqa: S105


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KERVAN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- foundation ---
    env: Literal["development", "production"] = Field(
        default="development", description="`production` enables HSTS and strict secret checks."
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///./var/kervan.db",
        description="SQLAlchemy URL: `sqlite+aiosqlite:///file` or `mariadb+aiomysql://u:p@h/db`.",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200, description="MariaDB pool size.")
    redis_url: str | None = Field(
        default=None, description="Unset: in-process backends (embedded). Set: Redis (scaled)."
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
    allowed_origins: CommaList = Field(
        default=[], description="CORS allow-list, exact origins, comma-separated."
    )
    metrics_allow: NetworkList = Field(
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
    trusted_proxies: NetworkList = Field(
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="JSON log level."
    )
    worker_heartbeat_max_age_seconds: float = Field(
        default=30.0, gt=0, description="`/ready` fails when no worker beat within this."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest JSON request body accepted."
    )
    data_dir: Path = Field(default=Path("./var"), description="Folder for files kervan writes.")

    # --- ratelimit ---
    ratelimit_policies: str = Field(
        default="",
        description="Rate-limit policies added or overriding core/ratelimit/catalog.py: "
        "`name=spec; name=spec`, e.g. `otp.send=3/hour burst 2 fail closed; "
        "public.ip=300/minute burst 50 shadow`.",
    )
    ratelimit_lockouts: str = Field(
        default="",
        description="Lockout rules likewise, e.g. "
        "`otp=5 failures in 15 minutes lock 15 minutes, 1 hour forget after 1 day`.",
    )
    ratelimit_default_policy: str = Field(
        default="public.ip",
        description="Policy the rate-limit middleware applies to every request per client IP; "
        "empty = none.",
    )
    ratelimit_memory_capacity: int = Field(
        default=250_000,
        ge=1,
        le=1 << 28,
        description="Keys the in-process limiter tracks per policy (at most about 110 bytes "
        "each: slots plus the key string); past it, expired keys and then those nearest to "
        "expiry are evicted.",
    )
    ratelimit_lockout_memory_capacity: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Keys the in-process lockout store tracks (active locks are never evicted).",
    )
    ratelimit_redis_max_batch: int = Field(
        default=256, ge=1, le=10_000, description="Most checks per batched EVALSHA on Redis."
    )
    ratelimit_redis_max_inflight: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Batched rate-limit calls in flight per process, each on one of the "
        "limiter's own Redis connections (beside the KERVAN_REDIS_POOL_SIZE pool).",
    )

    @model_validator(mode="after")
    def _ratelimit_catalog(self) -> Settings:
        from core.errors import ValidationFailed
        from core.ratelimit import build_catalog, parse_assignments

        try:
            catalog = build_catalog(
                parse_assignments(self.ratelimit_policies, "rate-limit policy"),
                parse_assignments(self.ratelimit_lockouts, "lockout rule"),
            )
        except ValidationFailed as exc:
            raise ValueError(f"ratelimit_policies: {exc.message}") from None
        default = self.ratelimit_default_policy
        if default and default not in catalog.policies:
            raise ValueError(f"ratelimit_default_policy: unknown policy {default!r}")
        return self

    # --- speculation ---
    # The segments served ("<language>-<device>"); any other seg is refused with 422.
    speculation_segments: CommaList = ["tr-m", "tr-d", "de-m", "de-d", "en-m", "en-d"]
    # Walk start pages; "{lang}" becomes the segment's language (the original: / and projects).
    speculation_start_paths: CommaList = ["/", "/{lang}/projects"]
    # Optional weights of the start pages (same order); empty = uniform, as the original.
    speculation_start_weights: Annotated[list[float], NoDecode] = []
    speculation_mode: Literal["montecarlo", "exact"] = "montecarlo"
    speculation_steps: int = Field(default=3, ge=1, le=50)
    speculation_sims: int = Field(default=5000, ge=1, le=10_000_000)
    speculation_seed: int = Field(default=0, ge=0, le=2**63 - 1)
    speculation_prerender_count: int = Field(default=2, ge=0, le=20)
    speculation_prefetch_count: int = Field(default=6, ge=0, le=50)
    # Routes whose score (expected visits per walk) is below this are not speculated.
    speculation_min_score: float = Field(default=0.0, ge=0.0)
    # Never speculated, sent as "not" clauses; "*" matches any characters.
    speculation_excluded_paths: CommaList = [
        "/logout",
        "/cart",
        "/checkout",
        "/admin",
        "/admin/*",
        "/*/logout",
        "/*/cart",
        "/*/checkout",
        "/*/admin/*",
    ]
    # Lower edges of the score buckets named in each rule's tag.
    speculation_score_buckets: Annotated[list[float], NoDecode] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    speculation_tag_prefix: str = Field(default="kervan", pattern=r"^[a-z][a-z0-9-]{0,31}$")
    speculation_refresh_seconds: float = Field(default=300.0, ge=1.0, le=86_400.0)
    speculation_cache_max_age_seconds: int = Field(default=60, ge=0, le=86_400)
    # How long a session's last page is remembered to pair it with the next page view.
    speculation_session_ttl_seconds: float = Field(default=1800.0, ge=10.0, le=7 * 86_400.0)

    @field_validator(
        "speculation_segments",
        "speculation_start_paths",
        "speculation_excluded_paths",
        "speculation_score_buckets",
        "speculation_start_weights",
        mode="before",
    )
    @classmethod
    def _speculation_lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @model_validator(mode="after")
    def _speculation_rules(self) -> Settings:
        from core.errors import ValidationFailed
        from core.flows.paths import normalize_path
        from core.flows.ranking import validate_exclusion
        from core.flows.segments import is_valid_segment

        problems: list[str] = []
        bad = [s for s in self.speculation_segments if not is_valid_segment(s)]
        if bad or not self.speculation_segments:
            problems.append(f"speculation_segments: need '<lang>-<device>' labels, bad: {bad}")
        for template in self.speculation_start_paths:
            try:
                if normalize_path(template.replace("{lang}", "xx")) != template.replace(
                    "{lang}", "xx"
                ):
                    problems.append(f"speculation_start_paths: {template!r} is not normalized")
            except ValidationFailed as exc:
                problems.append(f"speculation_start_paths: {template!r}: {exc.message}")
        if not self.speculation_start_paths:
            problems.append("speculation_start_paths: at least one start page is needed")
        for pattern in self.speculation_excluded_paths:
            try:
                validate_exclusion(pattern)
            except ValidationFailed as exc:
                problems.append(f"speculation_excluded_paths: {exc.message}: {pattern!r}")
        weights = self.speculation_start_weights
        if weights and (
            len(weights) != len(self.speculation_start_paths)
            or any(not 0 < w < float("inf") for w in weights)
        ):
            problems.append(
                "speculation_start_weights: one positive weight per start page, or none"
            )
        if any(not 0 < b < 1000 for b in self.speculation_score_buckets):
            problems.append("speculation_score_buckets: edges must lie in (0, 1000)")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- consent ---
    # Signs consent tokens; empty = a key derived from cookie_secret (separate label).
    consent_token_secret: str = ""
    # Earlier token secrets still accepted while their tokens age out (comma-separated).
    consent_token_previous_secrets: CommaList = []
    consent_token_lifetime_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    # Per-region lifetimes, e.g. "FR.analytics=13mo,US-CA.ads=90d" (mo, d or h).
    consent_region_ttls: CommaList = []
    # The banner/policy version in force, and the ordered history of versions with the purposes
    # each one re-asks, e.g. "1,2=ads|personalization,3=*" (current must be the last entry).
    consent_banner_version: str = Field(default="1", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    consent_banner_history: CommaList = []

    @field_validator(
        "consent_token_previous_secrets",
        "consent_region_ttls",
        "consent_banner_history",
        mode="before",
    )
    @classmethod
    def _consent_lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @model_validator(mode="after")
    def _consent_policy(self) -> Settings:
        from core.consent.banner import build_banner_policy
        from core.consent.purposes import build_registry
        from core.errors import ValidationFailed

        problems: list[str] = []
        try:
            build_registry(self.consent_region_ttls)
        except ValidationFailed as exc:
            problems.append(f"consent_region_ttls: {exc.message}")
        try:
            build_banner_policy(self.consent_banner_version, self.consent_banner_history)
        except ValidationFailed as exc:
            problems.append(f"consent_banner_history: {exc.message}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- queue ---
    # "auto": Redis Streams when KERVAN_REDIS_URL is set, else the SQL outbox in the database.
    queue_backend: Literal["auto", "sql", "redis"] = "auto"
    # None: run the worker inside the API process exactly when the backends are embedded.
    queue_embedded_worker: bool | None = None
    queue_max_attempts: int = Field(default=5, ge=1, le=100)
    queue_backoff_base_seconds: float = Field(default=2.0, ge=0, le=3600)
    queue_backoff_cap_seconds: float = Field(default=300.0, ge=0, le=86400)
    queue_job_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    queue_visibility_timeout_seconds: float = Field(default=90.0, gt=0, le=86400)
    queue_concurrency: int = Field(default=16, ge=1, le=1024)
    queue_poll_interval_seconds: float = Field(default=0.2, gt=0, le=10)
    queue_shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    queue_heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    queue_retention_seconds: float = Field(default=7 * 86400.0, ge=60)
    queue_breaker_window_seconds: float = Field(default=30.0, gt=0)
    queue_breaker_min_calls: int = Field(default=10, ge=1)
    queue_breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    queue_breaker_open_seconds: float = Field(default=30.0, gt=0)
    # Pacing in the rate-limit syntax of service/ratelimit: the whole bot, and each chat.
    queue_telegram_pacing: str = "5/second burst 5"
    queue_telegram_chat_pacing: str = "1/second burst 1"
    # Cloud API throughput is per business phone number (80 messages/s by default).
    queue_whatsapp_pacing: str = "80/second burst 80"
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_base_url: str = "https://api.telegram.org"
    telegram_language: Literal["tr", "de", "en"] = "tr"
    telegram_timezone: str = "Europe/Istanbul"
    telegram_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    telegram_fallback_webhook_url: str | None = None

    @field_validator("telegram_base_url", "telegram_fallback_webhook_url")
    @classmethod
    def _check_queue_urls(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.strip()

    @field_validator("queue_telegram_pacing", "queue_telegram_chat_pacing", "queue_whatsapp_pacing")
    @classmethod
    def _check_queue_pacing(cls, value: str) -> str:
        from core.errors import ValidationFailed
        from core.ratelimit.policy import parse_policy

        try:
            parse_policy("queue.pacing", value)
        except ValidationFailed as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("telegram_timezone")
    @classmethod
    def _check_telegram_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _check_queue_timeouts(self) -> Settings:
        if self.queue_visibility_timeout_seconds <= self.queue_job_timeout_seconds:
            raise ValueError(
                "queue_visibility_timeout_seconds: must be longer than "
                "KERVAN_QUEUE_JOB_TIMEOUT_SECONDS, or a job still running would be handed out again"
            )
        if self.queue_backend == "redis" and self.redis_url is None:
            raise ValueError("queue_backend: 'redis' needs KERVAN_REDIS_URL")
        return self

    # --- whatsapp ---
    whatsapp_app_secret: str = ""  # Meta app secret: X-Hub-Signature-256 key; empty = refuse all
    whatsapp_verify_token: str = ""  # hub.verify_token of the GET handshake; empty = refuse
    whatsapp_access_token: str = ""  # Graph API bearer token
    whatsapp_phone_number_id: str = ""
    whatsapp_graph_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = Field(default="v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$")
    whatsapp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    whatsapp_send_max_attempts: int = Field(default=8, ge=1, le=50)
    # Signs the /u/{token} unsubscribe links; empty = derived from cookie_secret.
    whatsapp_unsubscribe_secret: str = ""
    whatsapp_auto_reply: bool = False  # keyword/FAQ responder on inbound messages
    whatsapp_faq: dict[str, str] = {}  # JSON object: keyword -> answer
    # Meta batches notifications into payloads of up to 3 MB.
    whatsapp_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Processed/rejected raw webhook events and parked statuses are purged after this; 0 = keep.
    whatsapp_event_retention_days: int = Field(default=30, ge=0, le=3650)
    whatsapp_pending_status_retention_days: int = Field(default=7, ge=0, le=3650)

    # --- images ---
    images_dir: Path | None = None  # originals, variants and tiles; None = <data_dir>/images
    images_url_secret: str = ""  # HMAC key of variant URLs; empty = derived from cookie_secret
    images_widths: Annotated[list[int], NoDecode] = [320, 480, 640, 960, 1280, 1920, 2560]
    images_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    images_max_pixels: int = Field(default=60_000_000, ge=1)  # decompression-bomb guard
    images_max_side: int = Field(default=20_000, ge=1)
    images_input_formats: CommaList = ["jpeg", "png", "webp", "avif", "heif", "tiff"]
    images_source_hosts: CommaList = []  # exact host names URL ingest may fetch from
    images_fetch_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    images_fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    images_small_width: int = Field(default=640, ge=16)  # the "small AVIF" stage
    images_small_quality: int = Field(default=40, ge=1, le=100)
    images_avif_quality: int = Field(default=55, ge=1, le=100)  # full stage
    images_webp_quality: int = Field(default=75, ge=1, le=100)
    images_jpeg_quality: int = Field(default=80, ge=1, le=100)
    # 2 answers a first request for a 640 px AVIF in ~0.25 s; libvips' default 4 takes ~0.8 s for
    # ~20% smaller files (bench/bench_images.py). Variants render once, on first request.
    images_avif_effort: int = Field(default=2, ge=0, le=9)
    images_render_concurrency: int = Field(default=2, ge=1, le=64)
    images_blurhash_x: int = Field(default=4, ge=1, le=9)  # BlurHash components across
    images_blurhash_y: int = Field(default=3, ge=1, le=9)  # and down
    images_preview_width: int = Field(default=16, ge=4, le=64)
    images_tile_min_pixels: int = Field(default=4_000_000, ge=1)  # IIIF tiles from this size
    images_tile_size: int = Field(default=512, ge=64, le=4096)
    images_tile_quality: int = Field(default=80, ge=1, le=100)
    images_cache_max_bytes: int = Field(default=2 * 1024**3, ge=0)  # 0 = no disk budget
    images_cache_sweep_seconds: float = Field(default=300.0, ge=1, le=86_400)

    @field_validator("images_widths", "images_input_formats", "images_source_hosts", mode="before")
    @classmethod
    def _images_lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("images_widths")
    @classmethod
    def _images_ladder(cls, value: list[int]) -> list[int]:
        if not value or any(w < 16 or w > 16_384 for w in value):
            raise ValueError("needs at least one width, each within 16..16384")
        return sorted(set(value))

    @field_validator("images_url_secret")
    @classmethod
    def _images_url_secret(cls, value: str) -> str:
        if value and len(value.encode()) < 32:
            raise ValueError("must be empty (derived from cookie_secret) or at least 32 bytes")
        return value

    @field_validator("images_input_formats")
    @classmethod
    def _images_formats(cls, value: list[str]) -> list[str]:
        from core.images.formats import INPUT_FORMATS

        unknown = sorted(set(value) - INPUT_FORMATS)
        if unknown:
            raise ValueError(f"unknown formats {unknown}; known: {sorted(INPUT_FORMATS)}")
        return value

    # --- end of feature sections ---

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("allowed_origins")
    @classmethod
    def _normalise_origins(cls, value: list[str]) -> list[str]:
        return [_origin(v) for v in value]

    @field_validator("public_origin")
    @classmethod
    def _normalise_public_origin(cls, value: str) -> str:
        return _origin(value)

    @field_validator("metrics_allow", "trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        items = _split_commas(value)
        if not isinstance(items, list):
            return items
        parsed: list[Any] = []
        for item in items:
            if isinstance(item, str):
                try:
                    item = ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or network") from None
            parsed.append(item)
        return parsed

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
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or unset)")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> Settings:
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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when every Redis-backed interface runs in-process."""
        return self.redis_url is None


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
