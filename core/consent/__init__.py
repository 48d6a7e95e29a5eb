"""Consent per purpose with a lifetime each: registry, state, gate, event chain and token."""

from core.consent.banner import BannerPolicy, build_banner_policy
from core.consent.chain import ChainHead, ChainReport, ConsentEvent, verify_chain
from core.consent.evaluation import ConsentView, evaluate, needs_prompt, purpose_status
from core.consent.gate import has_consent
from core.consent.model import ConsentState, PurposeRecord, validate_subject
from core.consent.purposes import DEFAULT_PURPOSES, Purpose, PurposeRegistry, build_registry
from core.consent.token import ConsentTokenClaims, InvalidConsentToken, issue_token, verify_token
from core.consent.transitions import Transition, apply_choices, apply_withdrawal

__all__ = [
    "DEFAULT_PURPOSES",
    "BannerPolicy",
    "ChainHead",
    "ChainReport",
    "ConsentEvent",
    "ConsentState",
    "ConsentTokenClaims",
    "ConsentView",
    "InvalidConsentToken",
    "Purpose",
    "PurposeRecord",
    "PurposeRegistry",
    "Transition",
    "apply_choices",
    "apply_withdrawal",
    "build_banner_policy",
    "build_registry",
    "evaluate",
    "has_consent",
    "issue_token",
    "needs_prompt",
    "purpose_status",
    "validate_subject",
    "verify_chain",
    "verify_token",
]
