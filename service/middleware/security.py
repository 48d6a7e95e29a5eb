"""The Content-Security-Policy kervan sends (the edge adds it to every answer), and the per-response
nonce HTML handlers put on their ``<script>``/``<style>`` tags."""

from __future__ import annotations

import secrets

from starlette.types import Scope

CSP_TEMPLATE = (
    "default-src 'none'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
    "style-src 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def csp_nonce(scope: Scope) -> str:
    """The nonce HTML handlers must put on their ``<script>``/``<style>`` tags."""
    state = scope.setdefault("state", {})
    nonce = state.get("csp_nonce")
    if not isinstance(nonce, str):
        nonce = secrets.token_urlsafe(16)
        state["csp_nonce"] = nonce
    return nonce
