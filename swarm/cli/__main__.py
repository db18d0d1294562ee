"""`python -m swarm.cli`: the same entry point as the `swarm` console script."""

import sys

from swarm.cli.app import main

sys.exit(main())
