"""``python -m bridge.peers.departments worker|list|refused|keys``: the city's simulated departments."""

from __future__ import annotations

import sys

from bridge.peers.departments import DEPARTMENTS_PEER
from bridge.peers.receiver import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(DEPARTMENTS_PEER, sys.argv[1:]))
