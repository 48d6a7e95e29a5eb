from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from core.whatsapp.signature import sign_body, verify_signature

SECRET = "app-secret-0123456789"
BODY = orjson.dumps({"object": "whatsapp_business_account", "entry": []})


def test_valid_signature_verifies() -> None:
    assert verify_signature(SECRET, BODY, sign_body(SECRET, BODY))


def test_prefix_is_case_insensitive_and_hex_case_insensitive() -> None:
    header = sign_body(SECRET, BODY)
    assert verify_signature(SECRET, BODY, "SHA256=" + header[7:].upper())


def test_tampered_body_fails() -> None:
    header = sign_body(SECRET, BODY)
    tampered = BODY.replace(b"entry", b"entrx")
    assert not verify_signature(SECRET, tampered, header)
    assert not verify_signature(SECRET, BODY + b" ", header)


def test_wrong_secret_fails() -> None:
    assert not verify_signature(SECRET, BODY, sign_body("another-secret", BODY))


def test_missing_or_malformed_header_fails() -> None:
    digest = sign_body(SECRET, BODY)[7:]
    for header in (None, "", digest, "sha1=" + digest, "sha256=", "sha256=zz", "sha256=é" + digest):
        assert not verify_signature(SECRET, BODY, header), header


def test_empty_secret_never_verifies() -> None:
    assert not verify_signature("", BODY, sign_body("", BODY))


@settings(max_examples=60)
@given(body=st.binary(max_size=256), flip=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_detected(body: bytes, flip: int) -> None:
    header = sign_body(SECRET, body)
    assert verify_signature(SECRET, body, header)
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        assert not verify_signature(SECRET, changed, header)
