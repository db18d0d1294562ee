"""The lab's workflows that span the queue and the facts: the facts pipeline (check, reconcile,
write facts/), replication work queued from conflicts, triage decisions, seeding, git hooks.

May import: swarm.core, swarm.db, swarm.facts, swarm.queue.
"""
