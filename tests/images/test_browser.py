"""The progressive snippet in a real browser: headless Chromium against the app on 127.0.0.1.

Skipped, with the reason shown, when no Chromium is installed - unless KERVAN_REQUIRE_SERVICES=1,
which turns the missing browser into a failure (CI installs the ``chromium`` package).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from blurhash.blurhash import blurhash_decode
from PIL import Image
from websockets.sync.client import connect

from tests.cli_process import spawn_kervan
from tests.images import samples
from tests.settings import TEST_ENV

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (apt-get install chromium)"
    if TEST_ENV.require_services:
        pytest.fail(f"KERVAN_REQUIRE_SERVICES=1 and {message}", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _chromium()
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KERVAN_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'kervan.db'}",
        "KERVAN_DATA_DIR": str(tmp / "data"),
        "KERVAN_ADMIN_API_KEY": "browser-test-key",
        "KERVAN_PUBLIC_ORIGIN": origin,
        "KERVAN_REDIS_URL": "",
        "KERVAN_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    log = (tmp / "server.log").open("wb")
    proc = spawn_kervan(
        ["serve", "--migrate", "--port", str(port)], cwd=tmp, env=env, log=log, own_group=False
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{origin}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        yield origin
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _cdp_page(profile: Path, proc: subprocess.Popen[bytes]) -> str:
    """The WebSocket URL of Chromium's first page, once its DevTools endpoint is up."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists() and port_file.read_text().strip():
            port = port_file.read_text().split()[0]
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
        time.sleep(0.2)
    raise RuntimeError("Chromium did not open its DevTools endpoint")


def _run_page(
    url: str,
    tmp: Path,
    done: Callable[[dict[str, Any]], bool],
    extra: str = "null",
) -> dict[str, Any]:
    """Loads ``url`` and polls the demo page's report until ``done`` says so (or 90 s pass);
    the value of the JS expression ``extra`` is returned under the key ``"extra"``."""
    profile = tmp / "profile"
    command = [
        _chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--window-size=1000,800",
        "about:blank",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report: dict[str, Any] = {}
    try:
        with connect(_cdp_page(profile, proc), max_size=None) as ws:
            ids = iter(range(1, 1_000_000))

            def call(method: str, **params: Any) -> dict[str, Any]:
                msg_id = next(ids)
                ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("id") == msg_id:
                        return dict(reply.get("result", {}))

            call("Page.navigate", url=url)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                result = call(
                    "Runtime.evaluate",
                    expression="(document.getElementById('kv-report') || {}).textContent",
                    returnByValue=True,
                )
                text = result.get("result", {}).get("value") or "{}"
                report = json.loads(text)
                if done(report):
                    # Let any late layout shift be recorded before judging.
                    time.sleep(0.5)
                    result = call(
                        "Runtime.evaluate",
                        expression="document.getElementById('kv-report').textContent",
                        returnByValue=True,
                    )
                    final = dict(json.loads(result["result"]["value"]))
                    result = call("Runtime.evaluate", expression=extra, returnByValue=True)
                    final["extra"] = result.get("result", {}).get("value")
                    return final
                time.sleep(0.25)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    raise AssertionError(f"the page did not reach the expected stages: {report}")


def _finished(report: dict[str, Any]) -> bool:
    stages = report.get("stages", {})
    return "full" in stages.get("hero", []) and "full" in stages.get("below", [])


def test_placeholder_small_full_without_layout_shift(server: str, tmp_path: Path) -> None:
    created = httpx.post(
        f"{server}/admin/images",
        files={"file": ("p.jpg", samples.jpeg(1600, 1000, seed=11))},
        data={"alt": "Browser sample"},
        headers={"Authorization": "Bearer browser-test-key"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    blurhash = created.json()["blurhash"]
    report = _run_page(
        f"{server}/images/{image_id}/demo#scroll",
        tmp_path,
        _finished,
        extra=f"window.kervanProgressive.blurhashDataUri({json.dumps(blurhash)}, 32, 32)",
    )

    # The LCP image goes straight from its placeholder to full quality.
    assert report["stages"]["hero"] == ["placeholder", "full"]
    # The image below the fold waits until scrolled to, then runs every stage in order.
    assert report["stages"]["below"] == ["placeholder", "loading-small", "small", "full"]
    for name in ("hero", "below"):
        final = report[name]
        assert f"/img/{image_id}/" in final["src"] and "stage=full" in final["src"]
        assert ".avif" in final["src"]  # Chromium decodes AVIF, the first choice
        # The full stage is not the 640 px small stage: the browser picked from the srcset.
        assert final["natural"] > 640
        # The box was reserved from width/height: 1600x1000 shown at the page width.
        assert abs(final["width"] / final["height"] - 1.6) < 0.01
    assert report["cls"] == 0, report["shifts"]

    # The snippet's BlurHash decoder (used when no inline preview exists) agrees with the
    # pure-Python decoder of the reference package, pixel for pixel within rounding.
    uri = report["extra"]
    assert uri.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    expected = blurhash_decode(blurhash, 32, 32)
    worst = max(
        abs(channel - expected[y][x][c])
        for y in range(32)
        for x in range(32)
        for c, channel in enumerate(decoded.getpixel((x, y)))
    )
    assert worst <= 1
