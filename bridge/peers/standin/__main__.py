"""``python -m bridge.peers.standin worker|list|refused|keys``: the simulated stand-in municipality."""

from __future__ import annotations

import sys

from bridge.peers.receiver import run_cli
from bridge.peers.standin import STANDIN

if __name__ == "__main__":
    sys.exit(run_cli(STANDIN, sys.argv[1:]))
