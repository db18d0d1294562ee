"""What the benchmark scripts share about the processes they time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def as_installed(env: Mapping[str, str]) -> dict[str, str]:
    """An environment in which `swarm` starts as an installed copy does: with bytecode.

    pip byte-compiles a package when it installs it; an editable install, or
    PYTHONDONTWRITEBYTECODE (set on some machines), would instead make every timed process
    compile swarm from source (tens of ms), which no installed swarm pays. Compiles once here.
    """
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    folders = [str(REPO / "swarm"), str(REPO / "tools")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], env=out, check=True)
    return out
