"""The facts pipeline: check every citation, reconcile, and write facts/ (one writer).

facts/findings.jsonl is the provenance log (every finding, sorted), facts/verified_facts.json
the reconciled view, facts/verified_facts.schema.json its JSON Schema; all byte-stable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm import SCHEMA_VERSION
from swarm.citations import Check, CheckContext, check
from swarm.findings import Finding, all_findings, merge_log, read_log
from swarm.reconcile import Checks, FactsFile, reconcile
from swarm.registry import Registries
from swarm.store import Conn, Store

LOG = "findings.jsonl"
RUNS = "runs.jsonl"  # the results that run evidence cites, so a rebuild from git can check them
FACTS = "verified_facts.json"
SCHEMA = "verified_facts.schema.json"


@dataclass(frozen=True)
class Outcome:
    facts: FactsFile
    checks: Checks
    changed: tuple[str, ...]


def run_payloads(store: Store) -> dict[str, dict[str, Any]]:
    rows = store.read(lambda conn: conn.execute("SELECT id, payload FROM results").fetchall())
    return {r[0]: json.loads(r[1]) for r in rows}


def cited_runs(findings: Sequence[Finding], payloads: dict[str, dict[str, Any]]) -> str:
    cited = sorted(
        {
            ev.locator
            for f in findings
            for ev in f.evidence
            if ev.kind == "run" and ev.locator in payloads
        }
    )
    return "".join(
        json.dumps({"id": rid, "payload": payloads[rid]}, sort_keys=True) + "\n" for rid in cited
    )


def read_runs(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {row["id"]: row["payload"] for row in rows}


def check_all(
    findings: Sequence[Finding], repo: Path, payloads: dict[str, dict[str, Any]]
) -> dict[tuple[str, int], Check]:
    ctx = CheckContext(repo=repo, run_payload=payloads.get)
    return {(f.id, i): check(ev, f, ctx) for f in findings for i, ev in enumerate(f.evidence)}


def store_checks(store: Store, checks: Checks) -> None:
    def save(conn: Conn) -> None:
        conn.executemany(
            "INSERT INTO evidence_checks VALUES (?,?,?,?,?) ON CONFLICT(finding_id, idx) DO UPDATE SET "
            "status = excluded.status, message = excluded.message, score = excluded.score",
            [(fid, idx, c.status, c.message, c.score) for (fid, idx), c in sorted(checks.items())],
        )

    store.write(save)


def schema_text() -> str:
    schema = FactsFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"verified_facts/{SCHEMA_VERSION}"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def facts_text(facts: FactsFile) -> str:
    return (
        json.dumps(facts.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False)
        + "\n"
    )


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def run(store: Store | None, repo: Path, write: bool = True) -> Outcome:
    """Reconcile the store's findings (or, with no store, facts/findings.jsonl alone)."""
    folder = repo / "facts"
    if store is not None:
        # What git holds comes first: a fresh clone's store starts empty, and writing the log from
        # it alone would drop every committed finding.
        merge_log(store, read_log(folder / LOG))
    findings = all_findings(store) if store is not None else read_log(folder / LOG)
    payloads = run_payloads(store) if store is not None else read_runs(folder / RUNS)
    checks = check_all(findings, repo, payloads)
    facts = reconcile(findings, checks, Registries.load(folder))
    changed: list[str] = []
    if write:
        if store is not None:
            store_checks(store, checks)
            log = "".join(f.model_dump_json() + "\n" for f in sorted(findings, key=lambda f: f.id))
            for name, text in ((LOG, log), (RUNS, cited_runs(findings, payloads))):
                if _write_if_changed(folder / name, text):
                    changed.append(name)
        for name, text in ((FACTS, facts_text(facts)), (SCHEMA, schema_text())):
            if _write_if_changed(folder / name, text):
                changed.append(name)
    return Outcome(facts=facts, checks=checks, changed=tuple(changed))


def tally(outcome: Outcome) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """(facts by status, citation checks by status, open conflict ids) of a reconcile."""
    facts_by_status: dict[str, int] = {}
    for fact in outcome.facts.facts:
        facts_by_status[fact.status] = facts_by_status.get(fact.status, 0) + 1
    checks: dict[str, int] = {}
    for outcome_check in outcome.checks.values():
        checks[outcome_check.status] = checks.get(outcome_check.status, 0) + 1
    return facts_by_status, checks, [c.id for c in outcome.facts.conflicts if c.state == "open"]
