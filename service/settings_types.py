"""Types shared by the settings parts (``service/settings.py``, ``service/<feature>/settings.py``).

A leaf module: pydantic and the standard library only, so every feature's settings part can
import it without an import cycle.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

T = TypeVar("T")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def split_commas(value: Any) -> Any:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; anything but a string passes through unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _network(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return value


#: A list setting written as comma-separated values (``KERVAN_X=a,b,c``); a list passes as is.
#: ``NoDecode`` keeps pydantic-settings from reading the environment value as JSON first.
CommaList = Annotated[list[T], NoDecode, BeforeValidator(split_commas)]

#: An IP network; a bare address is its one-address network, host bits are ignored.
IpNetwork = Annotated[Network, BeforeValidator(_network)]
