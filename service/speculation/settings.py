"""The speculation rules' part of the settings (``KERVAN_SPECULATION_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic, the standard library, ``core`` and ``service.settings_types`` only), so
it never causes an import cycle; read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from service.settings_types import CommaList


class SpeculationSettings(BaseModel):
    # The segments served ("<language>-<device>"); any other seg is refused with 422.
    speculation_segments: CommaList[str] = ["tr-m", "tr-d", "de-m", "de-d", "en-m", "en-d"]
    # Walk start pages; "{lang}" becomes the segment's language (the original: / and projects).
    speculation_start_paths: CommaList[str] = ["/", "/{lang}/projects"]
    # Optional weights of the start pages (same order); empty = uniform, as the original.
    speculation_start_weights: CommaList[float] = []
    speculation_mode: Literal["montecarlo", "exact"] = "montecarlo"
    speculation_steps: int = Field(default=3, ge=1, le=50)
    speculation_sims: int = Field(default=5000, ge=1, le=10_000_000)
    speculation_seed: int = Field(default=0, ge=0, le=2**63 - 1)
    speculation_prerender_count: int = Field(default=2, ge=0, le=20)
    speculation_prefetch_count: int = Field(default=6, ge=0, le=50)
    # Routes whose score (expected visits per walk) is below this are not speculated.
    speculation_min_score: float = Field(default=0.0, ge=0.0)
    # Never speculated, sent as "not" clauses; "*" matches any characters.
    speculation_excluded_paths: CommaList[str] = [
        "/logout",
        "/cart",
        "/checkout",
        "/admin",
        "/admin/*",
        "/*/logout",
        "/*/cart",
        "/*/checkout",
        "/*/admin/*",
    ]
    # Lower edges of the score buckets named in each rule's tag.
    speculation_score_buckets: CommaList[float] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    speculation_tag_prefix: str = Field(default="kervan", pattern=r"^[a-z][a-z0-9-]{0,31}$")
    speculation_refresh_seconds: float = Field(default=300.0, ge=1.0, le=86_400.0)
    speculation_cache_max_age_seconds: int = Field(default=60, ge=0, le=86_400)
    # How long a session's last page is remembered to pair it with the next page view.
    speculation_session_ttl_seconds: float = Field(default=1800.0, ge=10.0, le=7 * 86_400.0)

    @model_validator(mode="after")
    def _speculation_rules(self) -> Self:
        from core.errors import ValidationFailed
        from core.flows.paths import normalize_path
        from core.flows.ranking import validate_exclusion
        from core.flows.segments import is_valid_segment

        problems: list[str] = []
        bad = [s for s in self.speculation_segments if not is_valid_segment(s)]
        if bad or not self.speculation_segments:
            problems.append(f"speculation_segments: need '<lang>-<device>' labels, bad: {bad}")
        for template in self.speculation_start_paths:
            try:
                if normalize_path(template.replace("{lang}", "xx")) != template.replace(
                    "{lang}", "xx"
                ):
                    problems.append(f"speculation_start_paths: {template!r} is not normalized")
            except ValidationFailed as exc:
                problems.append(f"speculation_start_paths: {template!r}: {exc.message}")
        if not self.speculation_start_paths:
            problems.append("speculation_start_paths: at least one start page is needed")
        for pattern in self.speculation_excluded_paths:
            try:
                validate_exclusion(pattern)
            except ValidationFailed as exc:
                problems.append(f"speculation_excluded_paths: {exc.message}: {pattern!r}")
        weights = self.speculation_start_weights
        if weights and (
            len(weights) != len(self.speculation_start_paths)
            or any(not 0 < w < float("inf") for w in weights)
        ):
            problems.append(
                "speculation_start_weights: one positive weight per start page, or none"
            )
        if any(not 0 < b < 1000 for b in self.speculation_score_buckets):
            problems.append("speculation_score_buckets: edges must lie in (0, 1000)")
        if problems:
            raise ValueError("\n".join(problems))
        return self
