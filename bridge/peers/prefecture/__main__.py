"""``python -m bridge.peers.prefecture worker|list|refused|keys``: the simulated prefecture server."""

from __future__ import annotations

import sys

from bridge.peers.prefecture import PREFECTURE
from bridge.peers.receiver import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(PREFECTURE, sys.argv[1:]))
