"""Apply Alembic migrations programmatically (no alembic.ini: the package carries its scripts)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError
from service.db import Database


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("service.migrations")))
    return config


def _upgrade(sync_conn: Any, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_conn
    command.upgrade(config, target)


async def migrate(db: Database, target: str = "heads") -> None:
    """Bring the schema to ``target`` (every feature branch head by default)."""
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, target)
    except SQLAlchemyError as exc:
        raise StorageError(f"migration failed: {exc}") from exc
