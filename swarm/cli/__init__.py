"""The `swarm` command line: one module per command group, each defining its commands'
arguments beside their handlers; swarm.cli.app only assembles them and maps errors to exit codes.

May import: everything below it (swarm's layers, tools/, swarm.web, swarm.mcp).
"""

from swarm.cli.app import main as main  # the console script's entry point: swarm.cli:main
