"""Degrade mode's part of the settings (``KERVAN_DEGRADE_*``). A leaf module."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DegradeSettings(BaseModel):
    degrade_mode: Literal["auto", "off", "on"] = Field(
        default="auto",
        description="`auto`: shed low-priority work while the process is overloaded (the "
        "thresholds below); `off`: never; `on`: always (an operator's emergency switch).",
    )
    degrade_loop_lag_ms: float = Field(
        default=250.0,
        ge=0,
        le=60_000,
        description="Event-loop lag (worst of the last second) at which the process counts as "
        "overloaded; 0 = not a signal.",
    )
    degrade_p99_ms: float = Field(
        default=2000.0,
        ge=0,
        le=600_000,
        description="p99 of request durations over the last few seconds at which the process "
        "counts as overloaded; 0 = not a signal.",
    )
    degrade_queue_age_seconds: float = Field(
        default=600.0,
        ge=0,
        le=86_400,
        description="Age of the oldest ready job at which the process counts as overloaded; "
        "0 = not a signal.",
    )
    degrade_enter_seconds: float = Field(
        default=2.0,
        ge=0,
        le=600,
        description="A signal stays at or above its threshold this long before shedding starts.",
    )
    degrade_exit_seconds: float = Field(
        default=15.0,
        ge=0,
        le=3600,
        description="Every signal stays below KERVAN_DEGRADE_EXIT_RATIO of its threshold this "
        "long before shedding stops (hysteresis: no flapping).",
    )
    degrade_exit_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Fraction of each threshold every signal must stay below to leave the mode.",
    )
    degrade_retry_after_seconds: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="Retry-After of a shed request's 503.",
    )
