"""``python -m bridge.peers.jlis init|publish``: create the simulated J-LIS and publish its anchors and CRLs.

Configuration comes from the environment (APP_ENV, INSTANCE_PATH, JLIS_DIRECTORY, JPKI_*), as for the apps.
"""

from __future__ import annotations

import sys

from bridge.peers.jlis.service import open_simulator, publish
from core import config


def main(argv: list[str]) -> int:
    """Run one command; ``publish`` refreshes the CRLs (they are valid for 24 hours)."""
    if len(argv) != 1 or argv[0] not in ("init", "publish"):
        print("usage: python -m bridge.peers.jlis init|publish", file=sys.stderr)
        return 2
    cfg = config.load()
    sim = open_simulator(cfg)
    publish(cfg, sim)
    print(f"J-LIS (simulated): {len(sim.generations)} CA generations; anchors and CRLs published under "
          f"{cfg['JPKI_CRL_DIRECTORY'].rsplit('/', 1)[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
