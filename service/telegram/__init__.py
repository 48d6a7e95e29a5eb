"""Telegram Bot API notifications, delivered through the durable job queue."""
