"""The facts pipeline: check every citation, reconcile, and write facts/ (one writer).

facts/findings.jsonl is the provenance log (every finding, sorted), facts/verified_facts.json
the reconciled view, facts/verified_facts.schema.json its JSON Schema; all byte-stable.
"""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from swarm import SCHEMA_VERSION
from swarm.core import atomic
from swarm.core.limits import STORED
from swarm.core.models import Capabilities, Model
from swarm.db.store import Conn, Store
from swarm.facts.citations import Check, CheckContext, RunGpu, RunRecord, check, numbered_names
from swarm.facts.findings import BadRow, EvidenceKind, Finding, iter_findings, load_log, merge_log
from swarm.facts.reconcile import (
    Checks,
    Conflict,
    FactsFile,
    Reconciler,
    TriageBasis,
    decisions_in_force,
    settle,
)
from swarm.facts.registry import Registries
from swarm.lab import replication

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
    return store.read(_runs_of)


def _runs_of(conn: Conn) -> dict[str, RunRecord]:
    rows = conn.execute(  # iterated, not fetched whole: one row at a time in memory on SQLite
        "SELECT r.id, r.task_id, r.status, r.agent, r.payload, t.state, a.capabilities, t.spec, "
        "p.fact_key FROM results r LEFT JOIN tasks t ON t.id = r.task_id "
        "LEFT JOIN agents a ON a.id = r.agent "
        # the run of a replication task (swarm/lab/replication.py): reconcile may settle by it
        "LEFT JOIN replications p ON p.task_id = r.task_id AND p.purpose = 'replicate'"
    )
    out = {}
    # an agent's capabilities, parsed once: 100k results come from a few dozen agents
    hardware: dict[str, tuple[str | None, tuple[RunGpu, ...]]] = {}
    for rid, task_id, status, agent, payload, state, caps, spec, replicates in rows:
        gpus: tuple[RunGpu, ...] = ()
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
            if caps not in hardware:
                hardware[caps] = _hardware(caps)
            host, gpus = hardware[caps]
        try:
            body = json.loads(payload)
        except ValueError:
            body = {}
        # built from columns and JSON this function checked: a few dozen agents' hardware,
        # validated once above, shared by 100k results
        out[rid] = RunRecord.model_construct(
            RUN_FIELDS,  # one set for every record (each its own is 400 bytes of 2 kB)
            id=rid,
            task_id=task_id,
            status=status,
            task_state=state,
            agent=agent,
            registered=caps is not None,
            host=host,
            gpus=gpus,
            measured=measured,
            payload=body if isinstance(body, dict) else {},
            replicates=replicates,
        )
    return out


RUN_FIELDS = set(RunRecord.model_fields)


def _hardware(caps: str) -> tuple[str | None, tuple[RunGpu, ...]]:
    """(host, GPUs) an agent registered; a capabilities row that no longer parses proves no
    hardware."""
    try:
        registered = Capabilities.model_validate_json(caps)
    except ValueError:
        return None, ()
    return registered.host, tuple(RunGpu(name=g.name, arch=g.arch) for g in registered.gpus)


def read_runs(path: Path, known: Mapping[str, RunRecord] | None = None) -> dict[str, RunRecord]:
    """facts/runs.jsonl: the results run evidence cited, as git keeps them (bad lines skipped).

    A line that is exactly a known record's (the store's, as runs_text wrote it) is that record:
    not parsed again, and not held twice (30k runs are most of a pass's memory otherwise).
    """
    if not path.exists():
        return {}
    out = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if known and line.startswith('{"id":"'):
                same = known.get(line[7 : line.find('"', 7)])
                if same is not None and same.model_dump_json() + "\n" == line:
                    out[same.id] = same
                    continue
            try:
                record = RunRecord.model_validate_json(line)
            except ValueError:
                continue  # a line this version cannot read proves nothing, and stops no one
            out[record.id] = record
    return out


def runs_text(records: dict[str, RunRecord]) -> str:
    return "".join(records[rid].model_dump_json() + "\n" for rid in sorted(records))


def cited_runs(
    cited: Iterable[str], store: dict[str, RunRecord], kept: dict[str, RunRecord]
) -> dict[str, RunRecord]:
    """What runs.jsonl keeps: every run it held (never dropped), and every cited run (result
    id) the store has; for a run in both, the store's record (the fresher one)."""
    return {**kept, **{rid: store[rid] for rid in cited if rid in store}}


def context(repo: Path, runs: dict[str, RunRecord], reg: Registries) -> CheckContext:
    def tolerance(predicate: str) -> tuple[float, float]:
        p = reg.predicate(predicate)
        return (p.tolerance_rel, p.tolerance_abs)

    def gpu_arch(name: str) -> str | None:
        spec = reg.hardware.gpu.get(name)
        return spec.arch if spec else None

    # memoised: each runs for every citation, 100k a pass, over a few hundred names
    memo = functools.lru_cache(maxsize=1 << 16)
    return CheckContext(
        repo=repo,
        run=runs.get,
        model_name=memo(lambda name: str(reg.canonical("model", name))),
        subject_kind=memo(lambda predicate: reg.predicate(predicate).subject),
        tolerance=memo(tolerance),
        unit=memo(lambda predicate: reg.predicate(predicate).unit),
        gpu_name=memo(lambda name: str(reg.canonical("gpu", name))),
        gpu_arch=memo(gpu_arch),
        arch_name=memo(lambda arch: str(reg.canonical("arch", arch))),
        metrics=memo(lambda predicate: reg.predicate(predicate).metrics),
        names=numbered_names(
            (*reg.hardware.gpu, *reg.aliases.gpu, *reg.aliases.model, *reg.aliases.model.values())
        ),
    )


class Checker:
    """Every citation's check, a finding at a time; equal outcomes share one (frozen) object,
    so 100k citations of a few sources cost a few objects."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.checks: dict[tuple[str, int], Check] = {}
        self.cited: set[str] = set()  # the result ids run evidence cites
        self._seen: dict[tuple[object, ...], Check] = {}

    def add(self, finding: Finding) -> None:
        for i, ev in enumerate(finding.evidence):
            if ev.kind == EvidenceKind.run:
                self.cited.add(ev.locator)
            c = check(ev, finding, self.ctx)
            same = (c.status, c.message, c.score, c.strength, c.origin,
                    tuple(c.environment.items()), c.replicates)  # fmt: skip
            self.checks[(finding.id, i)] = self._seen.setdefault(same, c)


def check_all(findings: Iterable[Finding], ctx: CheckContext) -> dict[tuple[str, int], Check]:
    """Every citation's check, by (finding id, evidence index)."""
    checker = Checker(ctx)
    for f in findings:
        checker.add(f)
    return checker.checks


def all_runs(store: Store | None, repo: Path) -> tuple[dict[str, RunRecord], dict[str, RunRecord]]:
    """(the runs git keeps, those merged with the store's): a fresh clone checks against both."""
    fresh = store_runs(store) if store is not None else {}
    kept = read_runs(repo / "facts" / RUNS, fresh)
    return kept, {**kept, **fresh}


def store_checks(store: Store, checks: Checks) -> None:
    def save(conn: Conn) -> None:
        conn.executemany(
            "INSERT INTO evidence_checks VALUES (?,?,?,?,?) ON CONFLICT(finding_id, idx) DO UPDATE SET "
            "status = excluded.status, message = excluded.message, score = excluded.score",
            # rows made as the store takes them: 100k row tuples never exist at once
            ((fid, idx, c.status, c.message, c.score) for (fid, idx), c in sorted(checks.items())),
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
    return "".join(facts_pieces(facts))


def facts_pieces(facts: FactsFile) -> Iterator[str]:
    """facts_text a row at a time, for a writer that never holds the whole file (each item is
    dumped on its own: the file as Python dicts never exists at once either)."""
    yield '{"conflicts": '
    yield from _rows(facts.conflicts)
    yield ',\n"facts": '
    yield from _rows(facts.facts)
    yield f',\n"schema_version": {facts.schema_version}}}\n'


def _rows(items: Sequence[Model]) -> Iterator[str]:
    if not items:
        yield "[]"
        return
    for i, item in enumerate(items):
        line = json.dumps(item.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        yield ("[\n" if i == 0 else ",\n") + line
    yield "\n]"


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
    findings, bad = _findings_in(store, folder)
    reg = Registries.load(folder)
    kept, runs = all_runs(store, repo)
    ctx = context(repo, runs, reg)
    # One streamed pass: each finding is checked, handed to the reconciler (which keeps a lean
    # claim) and written to the log, then dropped; 100k pydantic findings are never held at once.
    checker, pass_ = Checker(ctx), Reconciler(reg)
    log = atomic.PendingFile(folder / LOG) if write and store is not None else None
    try:
        for f in findings:  # in id order: the log's order
            checker.add(f)
            pass_.add(f, checker.checks)
            if log is not None:
                log.write(f.model_dump_json() + "\n")
        checks = checker.checks
        facts, basis = pass_.finish()
    except BaseException:
        if log is not None:
            log.discard()
        raise
    lab = replication.lab_stacks(store, folder / STACKS)
    facts = replication.mark_stale(facts, checks, lab)
    runs_read = (checker.cited, runs, kept)
    changed = _write_outputs(store, folder, log, write, facts, checks, lab, runs_read)
    if stamp is not None and cache is not None:
        splits = _split_ids(pass_.decisions)
        save_basis(cache, TriageCache(stamp=stamp + repo_stamp(repo), files=file_stamps(repo, ctx),
                                      splits=splits, basis=basis))  # fmt: skip
    return Outcome(facts=facts, checks=checks, changed=tuple(changed), bad_rows=tuple(bad))


def _findings_in(store: Store | None, folder: Path) -> tuple[Iterable[Finding], list[BadRow]]:
    """The findings of the pass, in id order: the log merged into the store first, then streamed
    from the store; the log alone without one."""
    if store is not None:
        # What git holds comes first: a fresh clone's store starts empty, and writing the log from
        # it alone would drop every committed finding. Lines the store holds are not re-read.
        held = frozenset(
            r[0] for r in store.read(lambda c: c.execute("SELECT id FROM findings").fetchall())
        )
        logged, bad = load_log(folder / LOG, skip=held)
        merge_log(store, logged)
        del held, logged
        return iter_findings(store, bad), bad  # streamed: bad rows are appended as they come
    return load_log(folder / LOG)


def _write_outputs(
    store: Store | None,
    folder: Path,
    log: atomic.PendingFile | None,
    write: bool,
    facts: FactsFile,
    checks: Checks,
    lab: dict[str, replication.Stack],
    runs_read: tuple[set[str], dict[str, RunRecord], dict[str, RunRecord]],
) -> list[str]:
    """The log, runs and stacks (when the store was read) and the facts and their schema (when
    asked to write); the names of those that changed."""
    cited, runs, kept = runs_read
    changed: list[str] = []
    if log is not None:
        assert store is not None
        store_checks(store, checks)
        if log.commit():
            changed.append(LOG)
        written = [(RUNS, runs_text(cited_runs(cited, runs, kept)))]
        if lab or (folder / STACKS).exists():
            written.append((STACKS, replication.stacks_text(lab)))
        for name, text in written:
            if _write_if_changed(folder / name, text):
                changed.append(name)
    if write:
        out = atomic.PendingFile(folder / FACTS)
        try:
            for piece in facts_pieces(facts):
                out.write(piece)
        except BaseException:
            out.discard()
            raise
        if out.commit():
            changed.append(FACTS)
        if _write_if_changed(folder / SCHEMA, schema_text()):
            changed.append(SCHEMA)
    return changed


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
    bad: list[BadRow] = []
    reg = Registries.load(repo / "facts")
    _, runs = all_runs(store, repo)
    checks = check_all(iter_findings(store, bad), context(repo, runs, reg))
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
