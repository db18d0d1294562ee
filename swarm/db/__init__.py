"""The database: opening a store (SQLite or PostgreSQL), its migrations, copy, export and search.

Owns every connection, pragma and schema change; the one place SQL dialects differ.
May import: swarm.core.
"""
