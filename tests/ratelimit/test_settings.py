"""Rate-limit settings are validated at start-up, naming the bad key and entry."""

from __future__ import annotations

import pytest

from service.ratelimit.factory import catalog_from_settings
from service.settings import SettingsError, load_settings


def test_overrides_reach_the_catalog() -> None:
    settings = load_settings(
        _env_file=None,
        ratelimit_policies="otp.send=2/hour fail closed; extra=5/s",
        ratelimit_lockouts="otp=3 failures in 1 minute lock 1 hour",
    )
    catalog = catalog_from_settings(settings)
    assert catalog.policy("otp.send").count == 2
    assert catalog.policy("extra").burst == 5
    assert catalog.lockout("otp").threshold == 3


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ratelimit_policies": "x=ten/minute"}, "KERVAN_RATELIMIT_POLICIES: invalid rate-limit"),
        ({"ratelimit_policies": "no-equals-sign"}, "expected 'name=spec'"),
        ({"ratelimit_lockouts": "otp=5 failures"}, "invalid lockout rule 'otp'"),
        ({"ratelimit_default_policy": "missing"}, "KERVAN_RATELIMIT_DEFAULT_POLICY: unknown"),
        ({"ratelimit_memory_capacity": 0}, "KERVAN_RATELIMIT_MEMORY_CAPACITY"),
    ],
)
def test_bad_settings_stop_the_start(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, **overrides)
    assert any(expected in line for line in caught.value.lines), caught.value.lines
