"""Why an image upload or fetch was refused; each is a 4xx with its own code."""

from __future__ import annotations

from core.errors import Forbidden, ValidationFailed


class ImageRejected(ValidationFailed):
    """The image itself is unacceptable (format, size, dimensions, content)."""

    code = "image_rejected"


class ImageTooLarge(ImageRejected):
    code = "image_too_large"


class UnsupportedImageFormat(ImageRejected):
    code = "unsupported_image_format"


class SourceNotAllowed(ValidationFailed):
    """A URL ingest points at a host outside the allow-list or at a non-public address."""

    code = "source_not_allowed"


class SourceFetchFailed(ValidationFailed):
    """The allowed source could not deliver the image (status, timeout, too many redirects)."""

    code = "source_fetch_failed"


class BadSignature(Forbidden):
    code = "bad_signature"


class BadVariantName(ValidationFailed):
    """A variant path's last segment is not ``<width>.<format>``."""

    code = "bad_variant"


class BadStage(ValidationFailed):
    code = "bad_stage"


class BadWidth(ValidationFailed):
    """The width is not a rung of the configured ladder."""

    code = "bad_width"


class BadFormat(ValidationFailed):
    code = "bad_format"
