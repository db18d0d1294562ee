"""The MCP adapter: the server's tools and resources (stdio and Streamable HTTP), their argument
and output schemas. Parses, calls one library function, maps errors; holds no SQL.

May import: every swarm layer below it (core, db, facts, queue, lab, present), tools/, swarm.web.
"""
