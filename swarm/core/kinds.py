"""Closed lists shared by the CLI, the MCP tools and the task specs, kept free of imports so a
command's parser can offer them without loading pydantic.
"""

from typing import Literal

# The task kinds; swarm.queue.specs.KIND_SPECS gives each the model its spec validates against
# (tests/test_layout.py keeps the two equal).
TaskKind = Literal["deploy", "benchmark", "kernel", "verify", "research", "other"]

# How a server is asked for a fixed output length (tools/bench_client.py); auto asks /v1/models.
ServerKind = Literal["auto", "vllm", "sglang", "trt-llm", "transformers", "openai"]
