#!/bin/sh
# Enable the attribution hooks in this clone (idempotent): core.hooksPath=.githooks, user.useConfigOnly.
cd "$(git rev-parse --show-toplevel)" || exit 1
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m swarm.cli hooks install "$@"
