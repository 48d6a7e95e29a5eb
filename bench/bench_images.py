"""Image variants and BlurHash: kervan against the floor of its encoder and against the usual picks.

Variants: one 640-wide AVIF (q=40, the small progressive stage) from a 4000x3000 JPEG, in one
process, rounds interleaved so that drift hits every contender alike:
- kervan ``render_variant`` (what the service runs: shrink-on-load thumbnail, sRGB, AVIF encode);
- kervan variant cache, cold miss (the above plus thread hop, single-flight and the disk write);
- plain libvips: ``thumbnail`` then ``heifsave`` through pyvips (the pyvips-binary wheel ships no
  ``vips`` CLI, so the ``vips thumbnail`` floor is the same libvips call made directly);
- Pillow with its AVIF plugin: ``Image.thumbnail`` (uses JPEG draft scaling) then ``save(AVIF)``.
Reported: variants per second (sequential, wall clock) and CPU milliseconds per variant (process
CPU time, every thread counted). Goals: kervan within 1.2x of plain libvips, at least 2x Pillow.

BlurHash encode (4x3 components) of the thumbnail kervan hashes at ingest (32x32) and of a 64x64
one: kervan's compiled kernel, the pure-Python ``blurhash`` package, and the C ``blurhash-python``
package, both through its public API (PIL image in) and its C core called directly via cffi with a
ready pixel buffer. Goals: at least 10x the pure-Python one, no slower than the C one.

    .venv/bin/python bench/bench_images.py [--rounds N] [--quick]

Prints a table and writes bench/results/images.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import blurhash as blurhash_c  # noqa: E402  (blurhash-python owns the package __init__)
import orjson  # noqa: E402
import PIL  # noqa: E402
import pyvips  # noqa: E402
from blurhash._functions import ffi as c_ffi  # noqa: E402
from blurhash._functions import lib as c_lib  # noqa: E402
from blurhash.blurhash import blurhash_encode as blurhash_pure  # noqa: E402  (pure `blurhash`)
from PIL import Image  # noqa: E402

from core.images.formats import OutputFormat  # noqa: E402
from native.blurhash import encode as blurhash_kervan  # noqa: E402
from service.images.render import EncodeOptions, libvips_version, render_variant  # noqa: E402
from service.images.variants import VariantCache, VariantKey  # noqa: E402

WIDTH = 640
QUALITY = 40
# libvips AVIF effort (0..9); 2 is kervan's default (images_avif_effort), 4 is libvips' default.
# Pillow's plugin gets AV1 speed 9 - effort, the speed libheif derives from the same effort.
EFFORTS = (2, 4)
RESULTS = ROOT / "bench" / "results" / "images.json"


def source_jpeg() -> bytes:
    """A 4000x3000 photo-like JPEG: gradients, texture and noise (no flat areas to cheat on)."""
    w, h = 4000, 3000
    xy = pyvips.Image.xyz(w, h)
    x, y = xy[0], xy[1]
    image = (x * (255.0 / w)).bandjoin([y * (255.0 / h), ((x + y) % 97) * (255.0 / 96)])
    image = (image + pyvips.Image.gaussnoise(w, h, sigma=18, seed=7)).cast("uchar")
    return bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=90))


def kervan_render(effort: int) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        return render_variant(data, WIDTH, OutputFormat.AVIF, EncodeOptions(QUALITY, effort))

    return run


def libvips_plain(effort: int) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        thumb = pyvips.Image.thumbnail_buffer(data, WIDTH)
        return bytes(thumb.heifsave_buffer(Q=QUALITY, compression="av1", effort=effort))

    return run


def pillow_avif(effort: int) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((WIDTH, 100_000))
            out = io.BytesIO()
            im.save(out, format="AVIF", quality=QUALITY, speed=9 - effort)
            return out.getvalue()

    return run


def make_cache_miss(tmp: Path, effort: int) -> Callable[[bytes], bytes]:
    counter = iter(range(1_000_000))

    def run(data: bytes) -> bytes:
        # A fresh cache root per call: always a cold miss, like a variant's first request.
        cache = VariantCache(tmp / f"c{effort}-{next(counter)}", max_concurrent_renders=1)
        key = VariantKey("0" * 64, WIDTH, OutputFormat.AVIF, EncodeOptions(QUALITY, effort))

        async def load(_key: str) -> bytes:
            return data

        return asyncio.run(cache.get(key, load))

    return run


def check_output(name: str, produced: bytes) -> None:
    with Image.open(io.BytesIO(produced)) as im:
        im.load()
        if im.format != "AVIF" or im.size != (WIDTH, 480):
            raise SystemExit(f"{name} produced {im.format} {im.size}, not AVIF 640x480")


def bench_variants(data: bytes, rounds: int, effort: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        contenders: dict[str, Callable[[bytes], bytes]] = {
            "kervan render_variant": kervan_render(effort),
            "kervan variant cache (cold miss)": make_cache_miss(Path(tmp), effort),
            "plain libvips (thumbnail + heifsave)": libvips_plain(effort),
            "Pillow + AVIF plugin": pillow_avif(effort),
        }
        sizes: dict[str, int] = {}
        for name, fn in contenders.items():  # warm-up and output check
            produced = fn(data)
            check_output(name, produced)
            sizes[name] = len(produced)
        walls: dict[str, list[float]] = {n: [] for n in contenders}
        cpus: dict[str, list[float]] = {n: [] for n in contenders}
        for _ in range(rounds):
            for name, fn in contenders.items():
                w0, c0 = time.perf_counter(), time.process_time()
                fn(data)
                walls[name].append(time.perf_counter() - w0)
                cpus[name].append(time.process_time() - c0)
    rows = []
    for name in contenders:
        wall = statistics.median(walls[name])
        rows.append(
            {
                "effort": effort,
                "contender": name,
                "variants_per_s": 1.0 / wall,
                "wall_ms": wall * 1000,
                "cpu_ms": statistics.median(cpus[name]) * 1000,
                "bytes": sizes[name],
            }
        )
    return rows


def per_call(fn: Callable[[], object], min_seconds: float) -> float:
    fn()
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and calls >= 3:
            return elapsed / calls


def bench_blurhash(min_seconds: float) -> list[dict[str, Any]]:
    rows = []
    data = source_jpeg()
    for side in (32, 64):
        thumb = pyvips.Image.thumbnail_buffer(data, side, height=side, crop="centre")
        rgb = bytes(thumb.write_to_memory())
        rows_py = [
            [list(rgb[(y * side + x) * 3 : (y * side + x) * 3 + 3]) for x in range(side)]
            for y in range(side)
        ]
        c_buf = c_ffi.new("uint8_t[]", rgb)
        c_out = c_ffi.new("char[]", 2 + 4 + (9 * 9 - 1) * 2 + 1)

        def c_core(buf: Any = c_buf, out: Any = c_out, s: int = side) -> str:
            result = c_lib.create_hash_from_pixels(4, 3, s, s, buf, s * 3, out)
            return str(c_ffi.string(result).decode())

        contenders: dict[str, Callable[[], str]] = {
            "kervan (Cython kernel)": lambda rgb=rgb, s=side: blurhash_kervan(rgb, s, s, 4, 3),
            # Its encode() closes the image it is given, so each call gets a fresh one.
            "blurhash-python (C, public API)": lambda rgb=rgb, s=side: blurhash_c.encode(
                Image.frombytes("RGB", (s, s), rgb), 4, 3
            ),
            "blurhash-python (C core via cffi)": c_core,
            "blurhash (pure Python)": lambda r=rows_py: blurhash_pure(r, 4, 3),
        }
        answers = {name: fn() for name, fn in contenders.items()}
        for name, fn in contenders.items():
            seconds = per_call(fn, min_seconds)
            rows.append(
                {
                    "pixels": f"{side}x{side}",
                    "contender": name,
                    "us_per_encode": seconds * 1e6,
                    "same_as_kervan": answers[name] == answers["kervan (Cython kernel)"],
                }
            )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="2 rounds, short timings")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    # Repeated calls on the same buffer must do the work every time.
    pyvips.cache_set_max(0)

    data = source_jpeg()
    variants: list[dict[str, Any]] = []
    ratios: dict[str, dict[str, float]] = {}
    for effort in EFFORTS:
        rows = bench_variants(data, rounds, effort)
        variants += rows
        by_name = {r["contender"]: r for r in rows}
        ours = by_name["kervan render_variant"]
        floor = by_name["plain libvips (thumbnail + heifsave)"]
        pillow = by_name["Pillow + AVIF plugin"]
        ratios[f"effort_{effort}"] = {
            "cpu_vs_plain_libvips": ours["cpu_ms"] / floor["cpu_ms"],
            "wall_vs_plain_libvips": ours["wall_ms"] / floor["wall_ms"],
            "speedup_vs_pillow_wall": pillow["wall_ms"] / ours["wall_ms"],
            "speedup_vs_pillow_cpu": pillow["cpu_ms"] / ours["cpu_ms"],
        }
    blur = bench_blurhash(0.3 if args.quick else 1.0)

    print(f"\n640-wide AVIF q={QUALITY} from a 4000x3000 JPEG, median of {rounds} rounds")
    header = f"{'effort':>6} {'contender':38} {'variants/s':>10} {'wall ms':>8} {'CPU ms':>8}"
    print(f"{header} {'bytes':>7}")
    for r in variants:
        print(
            f"{r['effort']:6d} {r['contender']:38} {r['variants_per_s']:10.2f}"
            f" {r['wall_ms']:8.1f} {r['cpu_ms']:8.1f} {r['bytes']:7d}"
        )
    for name, q in ratios.items():
        print(
            f"{name}: kervan / plain libvips CPU {q['cpu_vs_plain_libvips']:.2f}x, "
            f"wall {q['wall_vs_plain_libvips']:.2f}x (goal <= 1.2x); Pillow / kervan "
            f"wall {q['speedup_vs_pillow_wall']:.2f}x, CPU {q['speedup_vs_pillow_cpu']:.2f}x "
            "(goal >= 2x)"
        )

    print("\nBlurHash encode, 4x3 components")
    print(f"{'pixels':7} {'contender':36} {'us/encode':>11} {'vs kervan':>10} {'same':>5}")
    blur_ratios: dict[str, dict[str, float]] = {}
    for r in blur:
        base = next(
            b["us_per_encode"]
            for b in blur
            if b["pixels"] == r["pixels"] and b["contender"].startswith("kervan")
        )
        r["slower_than_kervan"] = r["us_per_encode"] / base
        blur_ratios.setdefault(r["pixels"], {})[r["contender"]] = r["slower_than_kervan"]
        print(
            f"{r['pixels']:7} {r['contender']:36} {r['us_per_encode']:11.1f}"
            f" {r['slower_than_kervan']:9.1f}x {r['same_as_kervan']!s:>5}"
        )

    result = {
        "bench": "images",
        "goal": {
            "variants": "kervan CPU within 1.2x of plain libvips; at least 2x Pillow",
            "blurhash": "at least 10x pure-Python blurhash; no slower than blurhash-python (C)",
        },
        "variants": {
            "width": WIDTH,
            "quality": QUALITY,
            "efforts": list(EFFORTS),
            "pillow_speed": "9 - effort",
            "rounds": rounds,
            "rows": variants,
            "ratios": ratios,
        },
        "blurhash": {"components": [4, 3], "rows": blur, "slower_than_kervan": blur_ratios},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "libvips": libvips_version(),
            "pillow": PIL.__version__,
            "cpus": __import__("os").cpu_count(),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
