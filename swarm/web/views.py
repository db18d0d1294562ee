"""What the pages show, assembled from library calls: conflicts side by side with their evidence,
the facts table with its filters, a task with its history. No SQL that changes anything here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from swarm.core.models import Capabilities, Event, Model, Result, Task
from swarm.db.store import Conn, Store
from swarm.facts.findings import Finding
from swarm.facts.reconcile import Conflict, ConflictSide, Fact
from swarm.lab import pipeline as facts
from swarm.lab import triage
from swarm.queue import jobs

logger = logging.getLogger(__name__)
FACTS_TTL_S = 30.0  # evidence files can change on disk without a write to the store
FACTS_PAGE = 100
CONFLICTS_PAGE = 20
LOG_TAIL = 8000


class Reconciled:
    """The last reconcile (checks and facts, nothing written), so that a page view does not
    re-check every citation. When findings were added, or it is older than FACTS_TTL_S (cited
    files change on disk), pages keep getting the last one while a thread reconciles again;
    only the first view, and the first after a decision, waits for a fresh one."""

    def __init__(self, store: Store, repo: Path, cache: Path | None = None) -> None:
        self.store, self.repo, self.cache = store, repo, cache
        self._lock = threading.Lock()  # one reconcile at a time
        self._at = 0.0
        self._version: tuple[Any, ...] | None = None
        self._outcome: facts.Outcome | None = None
        self._decisions: list[Finding] = []
        self._refreshing = False
        self._took = 0.0
        self._generation = 0  # bumped by forget(): a reconcile begun before it is not kept

    def version(self) -> tuple[Any, ...]:
        return tuple(
            self.store.read(lambda c: c.execute("SELECT count(*) FROM findings").fetchone())
        )

    def _refresh(self) -> facts.Outcome:
        with self._lock:
            generation, version = self._generation, self.version()
            started = time.monotonic()
            outcome = facts.run(self.store, self.repo, write=False, cache=self.cache)
            decisions = decision_findings(self.store)
            if generation == self._generation:
                self._outcome, self._version, self._at = outcome, version, time.monotonic()
                self._decisions = decisions
                self._took = self._at - started
            self._refreshing = False
            return outcome

    def _refresh_in_background(self) -> None:
        try:
            self._refresh()
        except Exception:  # a thread's last resort: the next view retries, the page keeps working
            logger.exception("reconciling for the web page failed")
            self._refreshing = False

    def outcome(self) -> facts.Outcome:
        current = self._outcome
        if current is None:
            return self._refresh()
        # A lab whose reconcile takes long is re-checked less often: at most a tenth of the time
        # goes to refreshing (100k findings: about 6 s per pass on a small machine).
        ttl = max(FACTS_TTL_S, 10 * self._took)
        stale = time.monotonic() - self._at > ttl or self.version() != self._version
        if stale and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_in_background, daemon=True).start()
        return current

    @property
    def decisions(self) -> list[Finding]:
        """Every decision finding as of the outcome pages show (read with it)."""
        return self._decisions

    @property
    def reconciled_at(self) -> float:
        """When the outcome pages show was computed (time.monotonic())."""
        return self._at

    def forget(self) -> None:
        """After a decision: the next view waits for a reconcile that applies it."""
        self._generation += 1
        self._outcome = None


def findings_by_id(store: Store, ids: Iterable[str]) -> dict[str, Finding]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}

    def read(conn: Conn) -> list[Any]:
        marks = ", ".join("?" for _ in wanted)
        return conn.execute(f"SELECT body FROM findings WHERE id IN ({marks})", wanted).fetchall()

    return {f.id: f for f in (Finding.model_validate_json(r[0]) for r in store.read(read))}


def agent_hosts(store: Store) -> dict[str, str]:
    rows = store.read(lambda c: c.execute("SELECT id, capabilities FROM agents").fetchall())
    return {r[0]: Capabilities.model_validate_json(r[1]).host for r in rows}


# ---------------------------------------------------------------- conflicts


class EvidenceView(Model):
    kind: str
    locator: str
    tier: str
    status: str  # the check's outcome: ok / drifted / broken / unverifiable-offline
    message: str
    quote: str | None = None
    metric: str | None = None


class FindingView(Model):
    id: str
    agent: str
    host: str | None
    value: Any
    unit: str | None
    statement: str
    scope: dict[str, Any]
    attributes: dict[str, Any]
    observed_at: str
    evidence: tuple[EvidenceView, ...]


class SideView(Model):
    index: int
    side: ConflictSide
    unit: str | None
    findings: tuple[FindingView, ...]


class DecisionView(Model):
    finding: str
    action: str
    accept: tuple[str, ...]
    reason: str
    by: str
    at: str
    undoes: str | None = None
    undone_by: str | None = None  # the undo that reversed it, if any


class ConflictView(Model):
    conflict: Conflict
    sides: tuple[SideView, ...]
    split_options: tuple[str, ...]
    decisions: tuple[DecisionView, ...]
    replication: str | None = None  # its replication or research task and state (#19)


def _finding_view(f: Finding, outcome: facts.Outcome, hosts: dict[str, str]) -> FindingView:
    evidence = []
    for i, ev in enumerate(f.evidence):
        check = outcome.checks.get((f.id, i))
        evidence.append(
            EvidenceView(
                kind=ev.kind,
                locator=ev.locator,
                # what the checker derived this citation proves; "context" when nothing
                tier=(check.strength if check and check.strength else "context"),
                status=check.status if check else "unchecked",
                message=check.message if check else "",
                quote=ev.quote.exact if ev.quote else None,
                metric=ev.metric,
            )
        )
    return FindingView(
        id=f.id,
        agent=f.agent,
        host=hosts.get(f.agent),
        value=f.value,
        unit=f.unit,
        statement=f.statement,
        scope=f.scope,
        attributes=f.attributes,
        observed_at=f.observed_at,
        evidence=tuple(evidence),
    )


def split_options(sides: Sequence[Sequence[Finding]]) -> tuple[str, ...]:
    """Attributes to split by: exactly those the split check accepts (swarm.lab.triage)."""
    return triage.split_attributes(sides)


def _judged(f: Finding) -> set[str]:
    return set(f.decision.findings) if f.decision is not None else set()


def decisions_on(findings: Sequence[Finding], conflict: Conflict) -> tuple[DecisionView, ...]:
    """Decisions on this conflict, oldest first: recorded under its id, or judging findings on
    its sides (a conflict's id changes when a finding joins it), each with the undo that
    reversed it."""
    on_sides = {fid for side in conflict.sides for fid in side.findings}
    mine = [
        f
        for f in findings
        if f.decision is not None and (f.decision.conflict == conflict.id or _judged(f) & on_sides)
    ]
    undone = {f.decision.undoes: f.id for f in mine if f.decision is not None}
    out = [
        DecisionView(
            finding=f.id,
            action=f.decision.action,
            accept=f.decision.accept,
            reason=f.decision.reason,
            by=f.decision.by,
            at=f.observed_at,
            undoes=f.decision.undoes,
            undone_by=undone.get(f.id),
        )
        for f in mine
        if f.decision is not None
    ]
    return tuple(sorted(out, key=lambda d: (d.at, d.finding)))


def decision_findings(store: Store) -> list[Finding]:
    """Every decision a person recorded (a few; read once per reconcile)."""
    rows = store.read(
        lambda c: c.execute(
            "SELECT body FROM findings WHERE predicate = 'decision' AND kind = 'decision'"
        ).fetchall()
    )
    return [Finding.model_validate_json(r[0]) for r in rows]


def choose_conflicts(outcome: facts.Outcome, which: str) -> list[Conflict]:
    return [c for c in outcome.facts.conflicts if which == "all" or c.state == which]


def conflict_views(
    store: Store, outcome: facts.Outcome, chosen: Sequence[Conflict], decided: Sequence[Finding]
) -> list[ConflictView]:
    """The conflicts side by side, each finding with its evidence checks and host, and the
    decisions on each."""
    from swarm.lab import replication

    by_id = findings_by_id(store, (fid for c in chosen for s in c.sides for fid in s.findings))
    hosts = agent_hosts(store)
    work = replication.for_conflicts(store, chosen)
    views = []
    for c in chosen:
        side_findings = [[by_id[fid] for fid in s.findings if fid in by_id] for s in c.sides]
        sides = tuple(
            SideView(
                index=i,
                side=s,
                unit=next((f.unit for f in fs if f.unit), None),
                findings=tuple(_finding_view(f, outcome, hosts) for f in fs),
            )
            for i, (s, fs) in enumerate(zip(c.sides, side_findings, strict=True))
        )
        views.append(
            ConflictView(
                conflict=c,
                sides=sides,
                split_options=split_options(side_findings),
                decisions=decisions_on(decided, c),
                replication=replication.describe(work[c.id]) if c.id in work else None,
            )
        )
    return views


# ---------------------------------------------------------------- facts


FILTERS = ("gpu", "platform", "model", "status")


def _field(fact: Fact, name: str) -> str:
    if name == "status":
        return str(fact.status)
    if name == "model":
        return str(fact.scope.get("model", fact.subject))
    return str(fact.scope.get(name, ""))


def filter_facts(items: Sequence[Fact], wanted: dict[str, str]) -> list[Fact]:
    """Facts whose GPU, platform, model and status match the filters (case-insensitive;
    a model filter matches part of the name)."""
    out = list(items)
    for name, value in wanted.items():
        if not value:
            continue
        v = value.lower()
        if name == "model":
            out = [f for f in out if v in _field(f, name).lower()]
        else:
            out = [f for f in out if _field(f, name).lower() == v]
    return out


def filter_choices(items: Sequence[Fact]) -> dict[str, list[str]]:
    return {n: sorted({_field(f, n) for f in items} - {""}) for n in FILTERS if n != "model"}


# ---------------------------------------------------------------- tasks


class TaskPage(Model):
    task: Task
    events: tuple[Event, ...]
    results: tuple[Result, ...]
    log_tail: str | None
    plots: tuple[str, ...]  # result ids whose payload holds a benchmark sweep


def has_sweep(result: Result) -> bool:
    report = result.payload.get("report")
    levels = report.get("levels") if isinstance(report, dict) else None
    return isinstance(levels, list) and sum(bool(lv.get("concurrency")) for lv in levels) >= 1


def task_page(store: Store, task_id: str, lab_dir: Path) -> TaskPage:
    """Raises NotFound for an unknown task."""
    from swarm.queue import queue

    task = queue.get_task(store, task_id)
    results = tuple(queue.task_results(store, task_id))
    tail = jobs.log_tail(jobs.job_dir(lab_dir, task_id), LOG_TAIL)
    if tail is None:  # no job folder here: the tail its last report carried, if any
        tails = [r.payload.get("job", {}).get("log_tail") for r in results]
        tail = next((t for t in reversed(tails) if isinstance(t, str)), None)
    return TaskPage(
        task=task,
        events=tuple(queue.task_events(store, task_id)),
        results=results,
        log_tail=tail,
        plots=tuple(r.id for r in results if has_sweep(r)),
    )
