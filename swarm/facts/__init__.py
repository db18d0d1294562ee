"""Findings and the rules that make facts of them: evidence and its checks (citations), the
registries (aliases, predicates, hardware), units, and the reconciler.

Pure functions of their inputs where it can be; findings are stored through swarm.db.
May import: swarm.core, swarm.db.
"""
