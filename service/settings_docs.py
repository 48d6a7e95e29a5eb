"""One-line descriptions of the settings whose declaration carries no comment or description.

Read by ``kervan settings --table`` (the README's configuration table); a test keeps every
setting described.
"""

from __future__ import annotations

NOTES: dict[str, str] = {
    "speculation_mode": "`montecarlo` (compiled walk) or `exact` (expected-visit solver).",
    "speculation_steps": "Walk length in page transitions.",
    "speculation_sims": "Monte-Carlo walks per refresh.",
    "speculation_seed": "Seed of the walks' random streams (answers are reproducible).",
    "speculation_prerender_count": "Top routes sent as `prerender` (eagerness moderate).",
    "speculation_prefetch_count": "Next routes sent as `prefetch` (eagerness eager).",
    "speculation_tag_prefix": "Prefix of each rule's tag (read back from Sec-Speculation-Tags).",
    "speculation_refresh_seconds": "Background refresh period of every segment's answer.",
    "speculation_cache_max_age_seconds": "`Cache-Control: max-age` of the rules response.",
    "consent_token_lifetime_seconds": "Lifetime of a signed consent token.",
    "consent_banner_history": "Banner versions in order with the purposes each re-asks.",
    "queue_max_attempts": "Attempts before a job is dead-lettered (per job overridable).",
    "queue_backoff_base_seconds": "Base of the exponential backoff with full jitter.",
    "queue_backoff_cap_seconds": "Longest wait between attempts.",
    "queue_job_timeout_seconds": "A handler running longer is cancelled and retried.",
    "queue_visibility_timeout_seconds": "A job leased this long by a dead worker is reclaimed.",
    "queue_concurrency": "Jobs one worker process runs at once.",
    "queue_poll_interval_seconds": "SQL outbox poll period when no wake-up arrives.",
    "queue_shutdown_grace_seconds": "SIGTERM: time to finish in-flight jobs before releasing them.",
    "queue_heartbeat_seconds": "Worker heartbeat and queue-gauge period.",
    "queue_retention_seconds": "Finished jobs are kept (rejecting duplicate keys) this long.",
    "queue_breaker_window_seconds": "Circuit breaker: window the error rate is measured over.",
    "queue_breaker_min_calls": "Circuit breaker: calls in the window before it may open.",
    "queue_breaker_failure_ratio": "Circuit breaker: failure ratio that opens it.",
    "queue_breaker_open_seconds": "Circuit breaker: time open before half-open probes.",
    "queue_telegram_chat_pacing": "Telegram pacing per chat.",
    "telegram_bot_token": "Telegram Bot API token (secret); unset = Telegram off.",
    "telegram_chat_id": "Chat that receives support notifications.",
    "telegram_base_url": "Bot API base URL (tests point it at a local server).",
    "telegram_language": "Language of Telegram notifications.",
    "telegram_timezone": "Time zone of times shown in notifications.",
    "telegram_timeout_seconds": "HTTP timeout of one Bot API call.",
    "telegram_fallback_webhook_url": "Receives dead-lettered Telegram messages (Slack, relay).",
    "whatsapp_phone_number_id": "Sender phone number id in the Graph API.",
    "whatsapp_graph_base_url": "Graph API base URL (tests point it at a local server).",
    "whatsapp_api_version": "Graph API version in request paths.",
    "whatsapp_timeout_seconds": "HTTP timeout of one Graph API call.",
    "whatsapp_send_max_attempts": "Attempts of one WhatsApp send job.",
    "whatsapp_pending_status_retention_days": "Statuses for unknown message ids kept this long.",
}
