"""swarm: coordination for a lab of AI agents (task queue with leases, lab tools, facts)."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
