"""Actions on the outside world: NVML, Docker and engine processes, the benchmark client, nvcc.

In the layering (tests/test_layout.py) tools/ sits above swarm's domain layers and below the
presentation and the adapters: it may import swarm.core, swarm.db, swarm.facts, swarm.queue and
swarm.lab; swarm.present may render what it measured; the CLI, the MCP server and the web page
drive it. tools/executors.py and tools/run_job.py are the exception, an adapter themselves: the
worker's one registry of executors, which runs the lab's passes (facts, README) as jobs.
"""
