"""Real kervan processes for the tests that need them (``python -m service.cli ...``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def spawn_kervan(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: IO[Any],
    own_group: bool = True,
) -> subprocess.Popen[bytes]:
    """``kervan ARGS`` with its output (stdout and stderr) in ``log``. ``own_group``: in a
    process group of its own, so a signal sent to the group reaches granian's worker processes
    too (as a crash of the container would take them all)."""
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        cwd=cwd,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
    )
