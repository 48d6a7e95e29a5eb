"""Public BlurHash encoder: validates its input, then calls the compiled kernel."""

from __future__ import annotations

from native import _blurhash

MAX_COMPONENTS = 9
# Blurhash is meant for a thumbnail; refusing huge buffers keeps a caller from stalling a worker.
MAX_PIXELS = 1024 * 1024


def encode(
    rgb: bytes | bytearray | memoryview,
    width: int,
    height: int,
    x_components: int = 4,
    y_components: int = 3,
) -> str:
    """BlurHash of ``width`` x ``height`` packed 8-bit sRGB pixels (row-major, 3 bytes per pixel).

    Raises ``ValueError`` for out-of-range component counts or a buffer that does not match the
    dimensions.
    """
    for name, count in (("x_components", x_components), ("y_components", y_components)):
        if not 1 <= count <= MAX_COMPONENTS:
            raise ValueError(f"{name} must be within 1..{MAX_COMPONENTS}, got {count}")
    if width < 1 or height < 1:
        raise ValueError(f"dimensions must be positive, got {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width}x{height} exceeds {MAX_PIXELS} pixels; encode a thumbnail")
    view = memoryview(rgb).cast("B")
    if view.nbytes != width * height * 3:
        raise ValueError(
            f"pixel buffer holds {view.nbytes} bytes, expected {width * height * 3} "
            f"for {width}x{height} RGB"
        )
    return _blurhash.encode_rgb(view, width, height, x_components, y_components)
