"""The bottom layer: errors, input limits, pydantic models, settings, atomic files, paging.

Owns what every other layer shares and nothing that touches a database or the outside world.
May import: the standard library, third-party libraries and `swarm` (SCHEMA_VERSION) only.
"""
