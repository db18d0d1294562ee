"""The task queue: tasks, leases and claims, routing to GPUs, agents and their tokens (auth),
task specs and the deployment catalog, job folders, the built-in worker and the remote client.

May import: swarm.core, swarm.db, swarm.facts (a report carries findings).
"""
