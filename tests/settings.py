"""Where the test suite finds the real servers (read once, like the service's own settings)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class TestEnvironment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KERVAN_", extra="ignore")

    test_redis_url: str = "redis://127.0.0.1:6379/0"
    test_mariadb_url: str = "mariadb+aiomysql://root@127.0.0.1:3306/test"
    #: When true an unreachable server fails the run instead of skipping its tests (CI).
    require_services: bool = False


TEST_ENV = TestEnvironment()
