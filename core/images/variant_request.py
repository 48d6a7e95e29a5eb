"""What a variant URL (``/img/{id}/{width}.{format}?stage=``) asks for.

The checks run in the order the API reports problems: the name's shape, the stage, the width
against the ladder, then the format (``auto`` is chosen from the ``Accept`` header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.images.errors import BadFormat, BadStage, BadVariantName, BadWidth
from core.images.formats import PREFERENCE, OutputFormat
from core.images.ladder import WidthLadder
from core.images.manifest import FULL_STAGE, STAGES
from core.images.negotiation import negotiate

AUTO_FORMAT = "auto"
MAX_WIDTH_DIGITS = 6
_FORMATS = "|".join([*(fmt.value for fmt in PREFERENCE), AUTO_FORMAT])
#: Every name the API can serve; the OpenAPI document states this pattern.
VARIANT_NAME_PATTERN = f"^[0-9]{{1,{MAX_WIDTH_DIGITS}}}\\.({_FORMATS})$"


def variant_name_pattern(widths: list[int] | tuple[int, ...]) -> str:
    """The names one ladder serves: its widths exactly, in any format."""
    listed = "|".join(str(w) for w in sorted(set(widths)))
    return f"^({listed})\\.({_FORMATS})$"


# The shape alone: an unknown format is reported as such, after the width.
_NAME = re.compile(f"([0-9]{{1,{MAX_WIDTH_DIGITS}}})\\.(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class VariantRequest:
    width: int
    fmt: OutputFormat
    stage: str
    #: The format was chosen from ``Accept`` (the response must say ``Vary: Accept``).
    negotiated: bool


def parse_variant_request(
    name: str, stage: str | None, accept: str | None, ladder: WidthLadder
) -> VariantRequest:
    shape = _NAME.fullmatch(name)
    if shape is None:
        raise BadVariantName("variant names look like <width>.<format>", details={"name": name})
    width, fmt_name = int(shape.group(1)), shape.group(2)
    stage = FULL_STAGE if stage is None else stage
    if stage not in STAGES:
        raise BadStage(f"stage must be one of {list(STAGES)}")
    if width not in ladder:
        raise BadWidth("width is not on the ladder", details={"allowed": ladder.widths})
    if fmt_name == AUTO_FORMAT:
        return VariantRequest(width, negotiate(accept), stage, negotiated=True)
    try:
        fmt = OutputFormat(fmt_name)
    except ValueError:
        raise BadFormat(
            "format must be avif, webp, jpeg or auto", details={"format": fmt_name}
        ) from None
    return VariantRequest(width, fmt, stage, negotiated=False)
