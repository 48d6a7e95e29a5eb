"""The device type of a visit, from the browser's User-Agent and the script's hint.

Bots are told by their User-Agent alone (a crawler's script hint means nothing); otherwise the
script's hint wins, since the page sees what the User-Agent no longer says (an iPad asks for
desktop pages with a Mac User-Agent); without one the User-Agent decides.
"""

from __future__ import annotations

import re
from typing import Literal

Device = Literal["desktop", "mobile", "tablet", "bot", "other"]
DEVICES: tuple[Device, ...] = ("desktop", "mobile", "tablet", "bot", "other")
_HINTED: tuple[Device, ...] = ("mobile", "desktop", "tablet")

_BOT = re.compile(
    r"(?<!cu)bot\b|bot/|crawl|spider|slurp|headless|lighthouse|pagespeed|facebookexternalhit|"
    r"preview|monitor|python-|curl/|wget/|httpclient|okhttp|go-http|java/|scrapy|phantomjs",
    re.IGNORECASE,
)
_TABLET = re.compile(
    r"ipad|tablet|kindle|silk/|playbook|nexus (7|9|10)\b|sm-t\d|android(?!.*mobile)",
    re.IGNORECASE,
)
_MOBILE = re.compile(
    r"mobi|iphone|ipod|android|windows phone|blackberry|bb10|opera mini|iemobile|webos",
    re.IGNORECASE,
)
_DESKTOP = re.compile(r"windows nt|macintosh|mac os x|x11|linux|cros", re.IGNORECASE)


def from_user_agent(user_agent: str | None) -> Device:
    if not user_agent:
        return "other"
    text = user_agent[:512]
    if _BOT.search(text):
        return "bot"
    if _TABLET.search(text):
        return "tablet"
    if _MOBILE.search(text):
        return "mobile"
    if _DESKTOP.search(text):
        return "desktop"
    return "other"


def device_type(user_agent: str | None, hint: str | None = None) -> Device:
    found = from_user_agent(user_agent)
    if found == "bot":
        return found
    for device in _HINTED:
        if hint == device:
            return device
    return found
