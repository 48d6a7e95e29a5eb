"""Canonical page paths, so that one page is one graph node however the front end reports it.

The rule: origin, query and fragment are dropped; dot segments are resolved; runs of ``/`` are
collapsed; a trailing ``/`` is dropped except for the root ``/``; characters outside the URL's
safe set are percent-encoded (``/über`` and ``/%C3%BCber`` are the same page) and percent
escapes are upper-cased. An absolute URL is only accepted from one of the site's own origins
(compared exactly, never by prefix), so another site's pages cannot enter the graph.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection
from urllib.parse import quote, unquote, urlsplit

from core.errors import ValidationFailed

#: Stored in indexed VARCHAR(191) columns (utf8mb4 index limit on MariaDB).
MAX_PATH_LENGTH = 191
MAX_RAW_LENGTH = 2048

# RFC 3986 pchar plus "/", without "%" (escapes are rebuilt from the decoded text).
_SAFE = "/:@!$&'()*+,;=-._~"
#: A path spelled with letters, digits and the safe characters only: accepted as it is (up to
#: MAX_PATH_LENGTH). The OpenAPI document states this form; other spellings that normalize to
#: a valid path (escapes, a query, an absolute URL on the site's origin) are accepted too.
PLAIN_PATH_PATTERN = "^/[A-Za-z0-9" + _SAFE.replace("-", "") + "-]*$"
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_DECODED_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _origin_of(scheme: str, host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}:{port}" if port and port != default else f"{scheme}://{host}"


def normalize_path(raw: str, origins: Collection[str] = ()) -> str:
    """The canonical path of ``raw`` (a path, or an absolute URL on one of ``origins``).

    ``origins`` are normalized ``scheme://host[:port]`` strings. Raises ``ValidationFailed``.
    """
    if not isinstance(raw, str) or not raw or len(raw) > MAX_RAW_LENGTH:
        raise ValidationFailed(f"a path must be 1-{MAX_RAW_LENGTH} characters")
    text = raw.strip()
    if _CONTROL.search(text):
        raise ValidationFailed("a path must not contain whitespace or control characters")
    if text.startswith("//"):
        # A pathname such as "//a" (location.pathname of "https://site//a"), not a
        # protocol-relative URL: front ends send paths here.
        text = "/" + text.lstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValidationFailed("the URL is malformed") from None
    if parts.scheme or parts.netloc:
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValidationFailed("a URL must be http(s) with a host")
        if "@" in parts.netloc:
            raise ValidationFailed("a URL must not carry credentials")
        origin = _origin_of(scheme, parts.hostname, port)
        if origin not in origins:
            raise ValidationFailed(
                "the URL is not on this site's origin", details={"origin": origin}
            )
    path = parts.path or ("/" if parts.netloc else "")
    if not path.startswith("/"):
        raise ValidationFailed("a path must start with '/'")
    # Decode, resolve, re-encode: one spelling per page.
    try:
        decoded = unquote(path, errors="strict") if "%" in path else path
    except UnicodeDecodeError:
        raise ValidationFailed("the path's percent escapes are not UTF-8") from None
    if _DECODED_CONTROL.search(decoded):
        raise ValidationFailed("a path must not encode control characters")
    resolved = posixpath.normpath(decoded)
    if resolved.startswith("//"):  # normpath keeps a leading "//" (POSIX); the web does not
        resolved = "/" + resolved.lstrip("/")
    canonical = quote(resolved, safe=_SAFE)
    if len(canonical) > MAX_PATH_LENGTH:
        raise ValidationFailed(
            f"the path is longer than {MAX_PATH_LENGTH} characters once normalized",
            details={"length": len(canonical)},
        )
    return canonical
