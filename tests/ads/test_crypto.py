"""Refresh tokens at rest: AES-256-GCM bound to the site, the key validated as a setting."""

from __future__ import annotations

import base64

import pytest

from service.ads.crypto import TokenCipher, TokenUnreadable
from service.settings import SettingsError, load_settings

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.urlsafe_b64encode(bytes(range(1, 33))).decode().rstrip("=")
TOKEN = "1//0gSecretRefreshToken-abc_def"


def test_a_token_round_trips_and_never_shows_in_the_stored_text() -> None:
    cipher = TokenCipher(KEY)
    stored = cipher.encrypt(TOKEN, site_id=7)
    assert stored.startswith("v1.") and TOKEN not in stored and "SecretRefresh" not in stored
    assert cipher.decrypt(stored, site_id=7) == TOKEN
    assert cipher.encrypt(TOKEN, site_id=7) != stored  # a fresh nonce every time


def test_a_ciphertext_belongs_to_its_site_and_its_key() -> None:
    cipher = TokenCipher(KEY)
    stored = cipher.encrypt(TOKEN, site_id=7)
    with pytest.raises(TokenUnreadable):
        cipher.decrypt(stored, site_id=8)  # copied onto another site's connection
    with pytest.raises(TokenUnreadable):
        TokenCipher(OTHER_KEY).decrypt(stored, site_id=7)
    flipped = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    for damaged in (flipped, stored[:20], "v2." + stored[3:], "plain-token", "v1.!!!"):
        with pytest.raises(TokenUnreadable):
            cipher.decrypt(damaged, site_id=7)


@pytest.mark.parametrize(
    "raw",
    [
        "c2hvcnQ=",  # 5 bytes
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        "not base64 at all!",
    ],
)
def test_the_key_setting_must_be_32_bytes_of_base64(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, ads_token_key=raw)
    assert any(line.startswith("KERVAN_ADS_TOKEN_KEY:") for line in caught.value.lines)


def test_the_key_setting_takes_standard_and_url_safe_base64() -> None:
    for raw in (KEY, OTHER_KEY, KEY.rstrip("=")):
        settings = load_settings(_env_file=None, ads_token_key=raw)
        assert settings.ads_token_key is not None
    assert load_settings(_env_file=None, ads_token_key="").ads_token_key is None
    assert KEY not in repr(load_settings(_env_file=None, ads_token_key=KEY))  # a secret
