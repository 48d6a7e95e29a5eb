# cython: language_level=3
"""Compiled BlurHash encoder (private kernel; call ``native.blurhash.encode``).

Bit-for-bit equal to the double-precision reference algorithm: the cosine tables hold exactly the
values the reference computes per pixel, every basis value is formed with the same operations, and
every factor is accumulated over the pixels in the same row-major order. The speed comes from not
recomputing cosines and sRGB decoding per pixel and component, and from running without the GIL.
"""

from libc.math cimport M_PI, copysign, cos, fabs, floor, pow
from libc.stdlib cimport free, malloc

cdef str ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"

cdef double SRGB_TO_LINEAR[256]


cdef void _fill_srgb_table() noexcept:
    cdef int c
    cdef double v
    for c in range(256):
        v = <double>c / 255.0
        if v <= 0.04045:
            SRGB_TO_LINEAR[c] = v / 12.92
        else:
            SRGB_TO_LINEAR[c] = pow((v + 0.055) / 1.055, 2.4)


_fill_srgb_table()


cdef inline int _linear_to_srgb(double value) noexcept nogil:
    cdef double v = value
    if v < 0.0:
        v = 0.0
    if v > 1.0:
        v = 1.0
    if v <= 0.0031308:
        return <int>(v * 12.92 * 255 + 0.5)
    return <int>((1.055 * pow(v, 1.0 / 2.4) - 0.055) * 255 + 0.5)


cdef inline double _sign_pow(double value, double exponent) noexcept nogil:
    return copysign(pow(fabs(value), exponent), value)


cdef inline int _quantise_ac(double value, double norm) noexcept nogil:
    cdef double q = floor(_sign_pow(value / norm, 0.5) * 9.0 + 9.5)
    if q < 0.0:
        q = 0.0
    if q > 18.0:
        q = 18.0
    return <int>q


cdef str _base83(long value, int length):
    cdef list chars = []
    cdef int i
    cdef long divisor
    for i in range(1, length + 1):
        divisor = 1
        for _ in range(length - i):
            divisor *= 83
        chars.append(ALPHABET[(value // divisor) % 83])
    return "".join(chars)


cdef void _factors(
    const unsigned char[::1] rgb,
    int width,
    int height,
    int xc,
    int yc,
    double *cos_x,
    double *cos_y,
    double *out,
) noexcept nogil:
    cdef int i, j, x, y, k, p
    cdef int n = xc * yc
    cdef double w = <double>width
    cdef double h = <double>height
    cdef double basis, lr, lg, lb, cy, norm
    for i in range(xc):
        for x in range(width):
            cos_x[i * width + x] = cos(M_PI * <double>i * <double>x / w)
    for j in range(yc):
        for y in range(height):
            cos_y[j * height + y] = cos(M_PI * <double>j * <double>y / h)
    for k in range(3 * n):
        out[k] = 0.0
    for y in range(height):
        for x in range(width):
            p = (y * width + x) * 3
            lr = SRGB_TO_LINEAR[rgb[p]]
            lg = SRGB_TO_LINEAR[rgb[p + 1]]
            lb = SRGB_TO_LINEAR[rgb[p + 2]]
            for j in range(yc):
                cy = cos_y[j * height + y]
                for i in range(xc):
                    norm = 1.0 if (i == 0 and j == 0) else 2.0
                    basis = norm * cos_x[i * width + x] * cy
                    k = (j * xc + i) * 3
                    out[k] += basis * lr
                    out[k + 1] += basis * lg
                    out[k + 2] += basis * lb
    for k in range(3 * n):
        out[k] = out[k] / (w * h)


def encode_rgb(const unsigned char[::1] rgb, int width, int height, int x_components, int y_components):
    """BlurHash of packed 8-bit sRGB pixels; inputs must already be validated by the wrapper."""
    cdef int n = x_components * y_components
    cdef double *cos_x = <double *>malloc(sizeof(double) * x_components * width)
    cdef double *cos_y = <double *>malloc(sizeof(double) * y_components * height)
    cdef double *fac = <double *>malloc(sizeof(double) * 3 * n)
    cdef double max_ac = 0.0
    cdef double ac_norm
    cdef int k, quant_max, dc
    cdef long ac
    cdef list parts
    if cos_x == NULL or cos_y == NULL or fac == NULL:
        free(cos_x)
        free(cos_y)
        free(fac)
        raise MemoryError()
    try:
        with nogil:
            _factors(rgb, width, height, x_components, y_components, cos_x, cos_y, fac)
            for k in range(3, 3 * n):
                if fabs(fac[k]) > max_ac:
                    max_ac = fabs(fac[k])
        quant_max = <int>floor(max_ac * 166 - 0.5)
        if quant_max < 0:
            quant_max = 0
        if quant_max > 82:
            quant_max = 82
        ac_norm = <double>(quant_max + 1) / 166.0
        dc = (
            (_linear_to_srgb(fac[0]) << 16)
            + (_linear_to_srgb(fac[1]) << 8)
            + _linear_to_srgb(fac[2])
        )
        parts = [
            _base83((x_components - 1) + (y_components - 1) * 9, 1),
            _base83(quant_max, 1),
            _base83(dc, 4),
        ]
        for k in range(1, n):
            ac = (
                _quantise_ac(fac[3 * k], ac_norm) * 19 * 19
                + _quantise_ac(fac[3 * k + 1], ac_norm) * 19
                + _quantise_ac(fac[3 * k + 2], ac_norm)
            )
            parts.append(_base83(ac, 2))
        return "".join(parts)
    finally:
        free(cos_x)
        free(cos_y)
        free(fac)
