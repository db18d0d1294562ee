"""swarm: coordination for a lab of AI agents (task queue with leases, lab tools, facts).

Subpackages in layers, each importing only those before it (tests/test_layout.py): core, db,
facts, queue, lab, then tools/ (outside this package), present, and the adapters web, mcp, cli.
This module holds the version and SCHEMA_VERSION, and imports nothing.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
