"""Triage decisions through the library and the CLI: attached to findings, checked, undone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from swarm.core.errors import InvalidInput, NotFound
from swarm.db.store import open_store
from swarm.facts.findings import add_findings
from swarm.lab import pipeline as facts
from swarm.lab import triage
from swarm.lab.seed import seed_findings
from tests.conftest import T0, facts_lab, run_swarm, swarm_json


@pytest.fixture
def lab(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    facts_lab(tmp_path, db, monkeypatch)
    add_findings(open_store(db), seed_findings(tmp_path), "seed", T0)
    return tmp_path


def _conflict(lab: Path, needle: str) -> Any:
    conflicts = swarm_json(lab, "triage", "list")["conflicts"]
    return next(c for c in conflicts if needle in c["explanation"])


def test_a_decision_names_the_findings_it_judged(lab: Path) -> None:
    store = open_store(os.environ["SWARM_DB"])
    tie = _conflict(lab, "7.1 tokens/s")
    keep = tie["sides"][0]["findings"][0]
    made = triage.decide(store, lab, tie["id"], "accept", "the rerun", "Dana", T0, (keep,))
    assert made.decision is not None and keep in made.decision.findings
    judged = {fid for side in tie["sides"] for fid in side["findings"]}
    assert set(made.decision.findings) == judged


def test_a_split_by_an_attribute_a_side_lacks_is_refused_naming_the_known_ones(lab: Path) -> None:
    store = open_store(os.environ["SWARM_DB"])
    tie = _conflict(lab, "7.1 tokens/s")
    with pytest.raises(
        InvalidInput, match="do not record it; attributes recorded on every finding of its sides"
    ):
        triage.decide(store, lab, tie["id"], "split", "typo", "Dana", T0, split_by="vram_bg")
    proc = run_swarm(lab, "triage", "resolve", tie["id"], "--split-by", "vram_bg",
                     "--reason", "typo", "--json")  # fmt: skip
    assert proc.returncode == 7 and "instance" in json.loads(proc.stdout)["error"]["message"]


def test_triage_undo_reverses_one_decision_and_the_conflict_opens_again(lab: Path) -> None:
    tie = _conflict(lab, "7.1 tokens/s")
    keep = tie["sides"][0]["findings"][0]
    made = swarm_json(lab, "triage", "resolve", tie["id"], "--accept", keep,
                      "--reason", "the default context")  # fmt: skip
    decided = [c for c in swarm_json(lab, "triage", "list", "--all")["conflicts"]
               if c["id"] == tie["id"]]  # fmt: skip
    assert decided[0]["state"] == "decided" and decided[0]["decision_id"] == made["id"]
    swarm_json(lab, "triage", "undo", made["id"], "--reason", "wrong side")
    again = _conflict(lab, "7.1 tokens/s")
    assert again["state"] == "open" and again["decision"] is None
    twice = run_swarm(lab, "triage", "undo", made["id"], "--reason", "again", "--json")
    assert twice.returncode == 7 and "already undone" in twice.stdout
    missing = run_swarm(lab, "triage", "undo", "fd_nope", "--reason", "x y z", "--json")
    assert missing.returncode == 5


def test_a_decision_names_the_person_git_names_and_an_agent_shell_may_not_decide(
    lab: Path,
) -> None:
    """Decisions are people's, derived from the shell: no --by to name someone else, and a
    process that runs as an agent (SWARM_AGENT) is refused (exit 9) with nothing recorded."""
    tie = _conflict(lab, "7.1 tokens/s")
    keep = tie["sides"][0]["findings"][0]
    agent = run_swarm(lab, "triage", "resolve", tie["id"], "--accept", keep, "--reason",
                      "looks right", "--json", env={**os.environ, "SWARM_AGENT": "mallory"})  # fmt: skip
    assert agent.returncode == 9 and "decisions are people's" in agent.stdout, agent.stdout
    declared = run_swarm(lab, "triage", "resolve", tie["id"], "--accept", keep, "--reason",
                         "looks right", "--by", "Linus")  # fmt: skip
    assert declared.returncode == 2 and "--by" in declared.stderr
    assert _conflict(lab, "7.1 tokens/s")["state"] == "open"
    made = swarm_json(
        lab, "triage", "resolve", tie["id"], "--accept", keep, "--reason", "the first run is right"
    )
    assert made["decision"]["by"] == "Dana <dana@lab>", made


def test_a_deferred_dispute_stays_listed(lab: Path) -> None:
    tie = _conflict(lab, "7.1 tokens/s")
    swarm_json(lab, "triage", "resolve", tie["id"], "--defer", "--reason", "rerun first")
    listed = {c["id"]: c["state"] for c in swarm_json(lab, "triage", "list")["conflicts"]}
    assert listed[tie["id"]] == "deferred"


def test_undo_refuses_what_is_not_a_decision(lab: Path) -> None:
    store = open_store(os.environ["SWARM_DB"])
    with pytest.raises(NotFound):
        triage.undo(store, "fd_000000000000", "because", "Dana", T0)


def test_the_triage_cache_answers_what_a_full_pass_would(
    lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(os.environ["SWARM_DB"])
    cache = tmp_path / "cache"

    def full() -> Any:
        return facts.run(store, lab, write=False).facts.conflicts

    facts.run(store, lab, cache=cache)
    assert (cache / facts.BASIS).exists()
    assert triage.conflicts(store, lab, cache) == full()
    tie = next(c for c in full() if "7.1 tokens/s" in c.explanation)
    keep = tie.sides[0].findings[0]
    triage.decide(store, lab, tie.id, "accept", "the rerun", "Dana", T0, (keep,), cache=cache)
    expected = full()
    with monkeypatch.context() as m:  # answered from the cache: no pass over the findings
        m.setattr(facts, "run", lambda *a, **k: pytest.fail("a full pass was run"))
        cached = triage.conflicts(store, lab, cache)
    assert cached == expected and next(c for c in cached if c.id == tie.id).state == "decided"
    other = next(c for c in full() if c.state == "open" and c.id != tie.id)
    triage.decide(store, lab, other.id, "defer", "later", "Dana", T0, cache=cache)
    assert triage.conflicts(store, lab, cache) == full()
    new = seed_findings(lab)[0].model_copy(update={"statement": "a newer claim"})
    add_findings(store, [new], "agent-z", T0)  # a new claim: the cache no longer holds
    assert triage.conflicts(store, lab, cache) == full()


def test_accepting_a_possible_alias_records_it_in_the_alias_table(lab: Path) -> None:
    store = open_store(os.environ["SWARM_DB"])
    alias = next(c for c in triage.conflicts(store, lab) if c.reason == "possible alias")
    keep = next(side for side in alias.sides if side.note and "nvfp4" in side.note)
    triage.decide(store, lab, alias.id, "accept", "one checkpoint", "Dana", T0, keep.findings[:1])
    table = (lab / "facts" / "aliases.toml").read_text()
    dropped = next(side.note for side in alias.sides if side is not keep)
    assert f'{dropped} = "{keep.note}"' in table and "# Spellings of the same entity" in table
    after = facts.run(store, lab, write=False).facts
    assert alias.id not in {c.id for c in after.conflicts}  # one name now: the keys merged
