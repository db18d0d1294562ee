"""The registries under facts/: one canonical key per fact, the scope schema at input."""

from __future__ import annotations

import pytest

from swarm.core.errors import InvalidInput
from swarm.facts.registry import Registries, project
from swarm.queue.specs import dedupe_key
from tests.conftest import REPO

REG = Registries.load(REPO / "facts")


@pytest.mark.parametrize(
    ("scope", "canonical"),
    [
        ({"tp": "1"}, {"tp": 1}),
        ({"tp": 2.0}, {"tp": 2}),
        ({"arch": "8.9"}, {"arch": "sm_89"}),
        ({"arch": "SM89"}, {"arch": "sm_89"}),
        ({"arch": "sm_89"}, {"arch": "sm_89"}),
        ({"arch": "12.0"}, {"arch": "sm_120"}),
        ({"gpu": "RTX PRO 6000 Blackwell Server Edition"}, {"gpu": "RTX Pro 6000"}),
        ({"gpu": "rtx pro 6000"}, {"gpu": "RTX Pro 6000"}),
        ({"platform": "tensorrtllm"}, {"platform": "tensorrt-llm"}),
        ({"platform": "trtllm-serve"}, {"platform": "tensorrt-llm"}),
        ({"precision": "nvfp4"}, {"quant": "NVFP4"}),
        ({"model_type": "moe"}, {"model_type": "MoE"}),
    ],
)
def test_every_spelling_of_a_scope_lands_on_one_canonical_scope(
    scope: dict[str, object], canonical: dict[str, object]
) -> None:
    assert REG.canonical_scope(scope) == canonical  # type: ignore[arg-type]


def test_an_unknown_scope_key_is_refused_naming_the_known_keys() -> None:
    with pytest.raises(InvalidInput, match=r"unknown scope key 'colour'.*arch, cuda"):
        REG.check_scope({"colour": "red", "gpu": "RTX 4090"})
    with pytest.raises(InvalidInput, match="tp must be an integer"):
        REG.check_scope({"tp": "two"})
    with pytest.raises(InvalidInput, match="tp must be an integer"):
        REG.check_scope({"tp": True})  # a bool is no GPU count, though Python counts it an int
    with pytest.raises(InvalidInput, match="scope gpu is empty"):
        REG.check_scope({"gpu": "  "})
    for nonsense in (0, -2, "0"):
        with pytest.raises(InvalidInput, match="tensor_parallel must be at least 1"):
            REG.check_scope({"tensor_parallel": nonsense})
    with pytest.raises(InvalidInput, match="arch must be a GPU arch"):
        REG.check_scope({"arch": "ampere"})
    REG.check_scope({"precision": "FP8", "tp": "1", "arch": "8.9"})  # aliases and spellings


def test_unknown_spellings_are_told_apart_from_known_ones() -> None:
    assert REG.known("gpu", "NVIDIA GeForce RTX 4090") and not REG.known("gpu", "RTX A6000")
    assert REG.known("platform", "trtllm") and not REG.known("platform", "tensorrt")
    assert REG.known("quant", "bf16") and not REG.known("quant", "nf4")


def test_the_queue_dedupe_key_reads_the_same_alias_table_as_the_facts() -> None:
    spec = {"gpu": "RTX Pro 6000", "model": "Qwen3-8B", "quant": "FP8", "tp": 1}
    keys = {
        dedupe_key("deploy", {**spec, "platform": spelling}, None)
        for spelling in ("trtllm-serve", "TensorRT-LLM", "tensorrtllm", "trt-llm")
    }
    assert len(keys) == 1
    assert project().aliases == REG.aliases  # the package reads the repo's facts/aliases.toml
    server = dedupe_key("deploy", {**spec, "gpu": "RTX PRO 6000 Blackwell Server Edition",
                                   "platform": "vllm"}, None)  # fmt: skip
    assert server == dedupe_key("deploy", {**spec, "platform": "vllm"}, None)
