"""What people read: the board, the README dashboard regions, and the CLI's text rendering.

May import: swarm.core, swarm.db, swarm.facts, swarm.queue, swarm.lab, and tools/ (a benchmark
sweep's plot, a kernel report): tools sits below the presentation and the adapters.
"""
