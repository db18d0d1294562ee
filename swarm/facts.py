"""The facts pipeline: check every citation, reconcile, and write facts/ (one writer).

facts/findings.jsonl is the provenance log (every finding, sorted), facts/verified_facts.json
the reconciled view, facts/verified_facts.schema.json its JSON Schema; all byte-stable.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm import SCHEMA_VERSION, atomic, replication
from swarm.citations import Check, CheckContext, RunGpu, RunRecord, check
from swarm.findings import BadRow, Finding, load_findings, load_log, merge_log
from swarm.limits import STORED
from swarm.models import Capabilities, Model
from swarm.reconcile import (
    Checks,
    Conflict,
    FactsFile,
    TriageBasis,
    decisions_in_force,
    reconcile_with_basis,
    settle,
)
from swarm.registry import Registries
from swarm.store import Conn, Store

LOG = "findings.jsonl"
RUNS = "runs.jsonl"  # the results that run evidence cites, so a rebuild from git can check them
FACTS = "verified_facts.json"
SCHEMA = "verified_facts.schema.json"
STACKS = "stacks.json"  # each host's engines and driver, so a rebuild from git knows what is stale


@dataclass(frozen=True)
class Outcome:
    facts: FactsFile
    checks: Checks
    changed: tuple[str, ...]
    bad_rows: tuple[BadRow, ...] = ()


def store_runs(store: Store) -> dict[str, RunRecord]:
    """Every result with what run evidence needs: status, task state, the agent's GPUs."""
    rows = store.read(
        lambda conn: conn.execute(
            "SELECT r.id, r.task_id, r.status, r.agent, r.payload, t.state, a.capabilities, t.spec, "
            "p.fact_key FROM results r LEFT JOIN tasks t ON t.id = r.task_id "
            "LEFT JOIN agents a ON a.id = r.agent "
            # the run of a replication task (swarm/replication.py): reconcile may settle by it
            "LEFT JOIN replications p ON p.task_id = r.task_id AND p.purpose = 'replicate'"
        ).fetchall()
    )
    out = {}
    for rid, task_id, status, agent, payload, state, caps, spec, replicates in rows:
        gpus: list[RunGpu] = []
        host = None
        try:
            task_spec = json.loads(spec) if spec else {}
        except ValueError:
            task_spec = {}
        measured = {
            k: str(task_spec[k])
            for k in ("model", "gpu", "platform", "quant")
            if isinstance(task_spec, dict) and isinstance(task_spec.get(k), str | int)
        }
        if caps:
            try:
                registered = Capabilities.model_validate_json(caps)
            except ValueError:
                registered = None  # a capabilities row that no longer parses proves no hardware
            if registered is not None:
                host = registered.host
                gpus = [RunGpu(name=g.name, arch=g.arch) for g in registered.gpus]
        try:
            body = json.loads(payload)
        except ValueError:
            body = {}
        out[rid] = RunRecord(
            id=rid,
            task_id=task_id,
            status=status,
            task_state=state,
            agent=agent,
            registered=caps is not None,
            host=host,
            gpus=tuple(gpus),
            measured=measured,
            payload=body if isinstance(body, dict) else {},
            replicates=replicates,
        )
    return out


def read_runs(path: Path) -> dict[str, RunRecord]:
    """facts/runs.jsonl: the results run evidence cited, as git keeps them (bad lines skipped)."""
    if not path.exists():
        return {}
    out = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = RunRecord.model_validate_json(line)
            except ValueError:
                continue  # a line this version cannot read proves nothing, and stops no one
            out[record.id] = record
    return out


def runs_text(records: dict[str, RunRecord]) -> str:
    return "".join(records[rid].model_dump_json() + "\n" for rid in sorted(records))


def cited_runs(
    findings: Sequence[Finding], store: dict[str, RunRecord], kept: dict[str, RunRecord]
) -> dict[str, RunRecord]:
    """What runs.jsonl keeps: every run it held (never dropped), and every cited run the store
    has; for a run in both, the store's record (the fresher one)."""
    cited = {
        ev.locator
        for f in findings
        for ev in f.evidence
        if ev.kind == "run" and ev.locator in store
    }
    return {**kept, **{rid: store[rid] for rid in cited}}


def context(repo: Path, runs: dict[str, RunRecord], reg: Registries) -> CheckContext:
    def tolerance(predicate: str) -> tuple[float, float]:
        p = reg.predicate(predicate)
        return (p.tolerance_rel, p.tolerance_abs)

    def gpu_arch(name: str) -> str | None:
        spec = reg.hardware.gpu.get(name)
        return spec.arch if spec else None

    return CheckContext(
        repo=repo,
        run=runs.get,
        model_name=lambda name: str(reg.canonical("model", name)),
        subject_kind=lambda predicate: reg.predicate(predicate).subject,
        tolerance=tolerance,
        gpu_name=lambda name: str(reg.canonical("gpu", name)),
        gpu_arch=gpu_arch,
        arch_name=lambda arch: str(reg.canonical("arch", arch)),
    )


def check_all(findings: Sequence[Finding], ctx: CheckContext) -> dict[tuple[str, int], Check]:
    """Every citation's check; equal outcomes share one (frozen) object, so 100k citations of a
    few sources cost a few objects."""
    seen: dict[str, Check] = {}
    out = {}
    for f in findings:
        for i, ev in enumerate(f.evidence):
            c = check(ev, f, ctx)
            out[(f.id, i)] = seen.setdefault(c.model_dump_json(), c)
    return out


def all_runs(store: Store | None, repo: Path) -> tuple[dict[str, RunRecord], dict[str, RunRecord]]:
    """(the runs git keeps, those merged with the store's): a fresh clone checks against both."""
    kept = read_runs(repo / "facts" / RUNS)
    return kept, {**kept, **(store_runs(store) if store is not None else {})}


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
    """Sorted keys, one fact or conflict per line: a diff shows what changed, and the C encoder
    writes it (an indented dump goes through Python's, a third of a pass at 100k findings)."""
    data = facts.model_dump(mode="json")

    def rows(items: list[Any]) -> str:
        lines = [json.dumps(item, sort_keys=True, ensure_ascii=False) for item in items]
        return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"

    return (
        f'{{"conflicts": {rows(data["conflicts"])},\n"facts": {rows(data["facts"])},\n'
        f'"schema_version": {data["schema_version"]}}}\n'
    )


def _write_if_changed(path: Path, text: str) -> bool:
    return atomic.write_if_changed(path, text)


def run(store: Store | None, repo: Path, write: bool = True, cache: Path | None = None) -> Outcome:
    """Reconcile the store's findings (or, with no store, facts/findings.jsonl alone).

    With a store and a cache folder, the conflicts before decisions are kept there for triage.
    """
    # A pass builds a few objects per finding and frees them all at the end: the cyclic garbage
    # collector would rescan the growing heap again and again while they are built (superlinear
    # in the findings). Nothing here makes cycles that must be collected before the pass ends.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(store, repo, write, cache)
    finally:
        if enabled:
            gc.enable()


def _run(store: Store | None, repo: Path, write: bool, cache: Path | None) -> Outcome:
    folder = repo / "facts"
    stamp = store_stamp(store) if store is not None and cache is not None else None
    if store is not None:
        # What git holds comes first: a fresh clone's store starts empty, and writing the log from
        # it alone would drop every committed finding. Lines the store holds are not re-read.
        held = frozenset(
            r[0] for r in store.read(lambda c: c.execute("SELECT id FROM findings").fetchall())
        )
        logged, bad_log = load_log(folder / LOG, skip=held)
        merge_log(store, logged)
        findings, bad_store = load_findings(store)
        bad = [*bad_log, *bad_store]
    else:
        findings, bad = load_log(folder / LOG)
    reg = Registries.load(folder)
    kept, runs = all_runs(store, repo)
    ctx = context(repo, runs, reg)
    checks = check_all(findings, ctx)
    facts, basis = reconcile_with_basis(findings, checks, reg)
    lab = replication.lab_stacks(store, folder / STACKS)
    facts = replication.mark_stale(facts, checks, lab)
    changed: list[str] = []
    if write:
        if store is not None:
            store_checks(store, checks)
            log = "".join(f.model_dump_json() + "\n" for f in sorted(findings, key=lambda f: f.id))
            runs_now = runs_text(cited_runs(findings, runs, kept))
            written = [(LOG, log), (RUNS, runs_now)]
            if lab or (folder / STACKS).exists():
                written.append((STACKS, replication.stacks_text(lab)))
            for name, text in written:
                if _write_if_changed(folder / name, text):
                    changed.append(name)
        for name, text in ((FACTS, facts_text(facts)), (SCHEMA, schema_text())):
            if _write_if_changed(folder / name, text):
                changed.append(name)
    if stamp is not None and cache is not None:
        splits = _split_ids(findings)
        save_basis(cache, TriageCache(stamp=stamp + repo_stamp(repo), files=file_stamps(repo, ctx),
                                      splits=splits, basis=basis))  # fmt: skip
    return Outcome(facts=facts, checks=checks, changed=tuple(changed), bad_rows=tuple(bad))


# ---------------------------------------------------------------- the triage cache

BASIS = "triage-basis.json"


class TriageCache(Model):
    """The last pass's conflicts before decisions, and what it read: triage reuses them while
    nothing it depends on changed (decisions are applied on top, so recording one keeps it)."""

    schema_version: int = SCHEMA_VERSION
    stamp: str
    files: dict[str, tuple[int, int]]
    splits: tuple[str, ...]
    basis: TriageBasis


def store_stamp(store: Store) -> str:
    """What a pass read from the store, cheaply: claims, results and agents (not decisions)."""

    def read(conn: Conn) -> list[object]:
        return [
            *conn.execute(
                "SELECT count(*), max(observed_at) FROM findings WHERE kind = 'claim'"
            ).fetchone(),
            *conn.execute("SELECT count(*), max(created_at) FROM results").fetchone(),
            *conn.execute("SELECT count(*), max(registered_at) FROM agents").fetchone(),
        ]

    return json.dumps(store.read(read), default=str)


def repo_stamp(repo: Path) -> str:
    """The registries and git's copies of the findings and runs, by size and modification time."""
    names = ("aliases.toml", "predicates.toml", "hardware.toml", "scope.toml", LOG, RUNS)
    return json.dumps([_stat(repo / "facts" / n) for n in names])


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def file_stamps(repo: Path, ctx: CheckContext) -> dict[str, tuple[int, int]]:
    return {rel: _stat(repo / rel) for rel in sorted(ctx.files)}


def _split_ids(findings: Sequence[Finding]) -> tuple[str, ...]:
    return tuple(sorted(m.id for m in decisions_in_force(findings) if m.decision.action == "split"))


def save_basis(folder: Path, cache: TriageCache) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / BASIS, cache.model_dump_json())  # a reader sees old or new


def decisions(store: Store) -> list[Finding]:
    rows = store.read(
        lambda c: c.execute("SELECT body FROM findings WHERE kind = 'decision'").fetchall()
    )
    out = []
    for (body,) in rows:
        try:
            out.append(Finding.model_validate_json(body, context=STORED))
        except ValueError:
            continue  # a bad row: reported by the full pass
    return out


def conflicts_now(store: Store, repo: Path, cache: Path | None) -> tuple[Conflict, ...]:
    """The conflicts as a full pass would give them, from the triage cache when it still holds
    (the same claims, results, agents, registries and cited files; no new split), else a pass."""
    if cache is not None and (cache / BASIS).exists():
        try:
            kept = TriageCache.model_validate_json((cache / BASIS).read_text(encoding="utf-8"))
        except ValueError:
            kept = None
        if (
            kept is not None
            and kept.stamp == store_stamp(store) + repo_stamp(repo)
            and all(_stat(repo / rel) == st for rel, st in kept.files.items())
        ):
            made = decisions(store)
            if _split_ids(made) == kept.splits:
                in_force = decisions_in_force(made)
                settled = settle({c.id: c for c in kept.basis.conflicts}, in_force,
                                 kept.basis.judged)  # fmt: skip
                return tuple(c for c, _ in settled.values())
    return run(store, repo, write=False, cache=cache).facts.conflicts


def verify(store: Store, repo: Path) -> tuple[dict[tuple[str, int], Check], list[BadRow]]:
    """Check every citation of the store's findings (and store the outcomes); bad rows too."""
    findings, bad = load_findings(store)
    reg = Registries.load(repo / "facts")
    _, runs = all_runs(store, repo)
    checks = check_all(findings, context(repo, runs, reg))
    store_checks(store, checks)
    return checks, bad


def tally(outcome: Outcome) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """(facts by status, citation checks by status, open conflict ids) of a reconcile."""
    facts_by_status: dict[str, int] = {}
    for fact in outcome.facts.facts:
        facts_by_status[fact.status] = facts_by_status.get(fact.status, 0) + 1
    checks: dict[str, int] = {}
    for outcome_check in outcome.checks.values():
        checks[outcome_check.status] = checks.get(outcome_check.status, 0) + 1
    return facts_by_status, checks, [c.id for c in outcome.facts.conflicts if c.state == "open"]
