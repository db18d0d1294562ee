"""The README dashboard: generated regions rendered from the store and facts/verified_facts.json.

A region sits between `<!-- BEGIN GENERATED name -->` and `<!-- END GENERATED name sha256=… -->`;
the hash is of the body as generated, so a region edited by hand is detected and never
overwritten silently. Rendering is a pure function of its inputs (no timestamps): running it
twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.core import atomic
from swarm.core.errors import Conflict as StateConflict
from swarm.core.errors import InvalidInput
from swarm.db.store import Conn, Store
from swarm.facts.findings import Finding, read_log
from swarm.facts.reconcile import Canon, Fact, FactsFile
from swarm.facts.registry import Registries
from swarm.present.board import NOT_RESOLUTION, board

REGION_RE = re.compile(
    r"<!-- BEGIN GENERATED (?P<name>[a-z_]+) -->\n(?P<body>.*?)<!-- END GENERATED (?P=name) sha256=(?P<sha>[0-9a-f]+) -->",
    re.DOTALL,
)
DASHBOARD_HEADING = "## Lab dashboard"
BENCH_PREDICATES = ("decode_tps_single_stream", "throughput_tps_batched")


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def region(name: str, body: str) -> str:
    body = body if body.endswith("\n") else body + "\n"
    return f"<!-- BEGIN GENERATED {name} -->\n{body}<!-- END GENERATED {name} sha256={body_hash(body)} -->"


def apply(text: str, sections: Mapping[str, str], force: bool = False) -> str:
    """The README with every section's region replaced (missing ones appended, in order).

    Raises StateConflict naming the regions edited by hand, unless force.
    """
    found = {m["name"]: m for m in REGION_RE.finditer(text)}
    edited = [n for n, m in found.items() if n in sections and body_hash(m["body"]) != m["sha"]]
    if edited and not force:
        raise StateConflict(
            f"README regions edited by hand: {', '.join(edited)}; move the text out of the generated "
            "region, or run `swarm readme --force` to overwrite it"
        )
    out = REGION_RE.sub(
        lambda m: region(m["name"], sections[m["name"]]) if m["name"] in sections else m[0], text
    )
    missing = [n for n in sections if n not in found]
    if missing:
        if DASHBOARD_HEADING not in out:
            out = out.rstrip("\n") + f"\n\n{DASHBOARD_HEADING}\n"
        out = (
            out.rstrip("\n") + "\n\n" + "\n\n".join(region(n, sections[n]) for n in missing) + "\n"
        )
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return (
            ("-" if value is None or value == "" else str(value))
            .replace("|", "\\|")
            .replace("\n", " ")
        )

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def exit_code_table() -> str:
    """The README's table of exit codes and errors, rendered from swarm.core.errors (a test keeps
    the README equal to it); the same table ends every `swarm --help`."""
    from swarm.core.errors import ExitCode, exit_codes

    def when(row: ExitCode) -> str:
        errors = [(f"`{e.__name__}` (`{e.code()}`)", e.__doc__ or "") for e in row.errors]
        errors += [(f"`{name}` (CLI only)", text) for name, text in row.cli_only]
        return "; ".join(f"{name}: {text.strip().rstrip('.')}" for name, text in errors)

    rows = [(row.code, row.label, when(row)) for row in exit_codes()]
    return table(("exit", "meaning", "error type in `--json` (MCP error code): when"), rows)


def _num(value: float | None, decimals: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.{decimals}f}"


# ---------------------------------------------------------------- inputs


@dataclass
class Deployment:
    """A deploy task with what the dashboard shows of it (and of its benchmark)."""

    id: str
    state: str
    spec: dict[str, Any]
    arch: str | None
    note: str | None
    bench_id: str | None = None
    bench_state: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    result_id: str | None = None


@dataclass
class Inputs:
    headline: str
    gpus: list[tuple[str, str | None, int]]
    deployments: list[Deployment]
    facts: FactsFile
    findings: dict[str, Finding]
    registries: Registries


def _deployments(conn: Conn) -> list[Deployment]:
    deploys = [
        Deployment(
            id=r["id"],
            state=r["state"],
            spec=json.loads(r["spec"]),
            arch=json.loads(r["requires"]).get("arch"),
            note=r["note"],
        )
        for r in conn.execute(
            "SELECT id, state, spec, requires, note FROM tasks WHERE kind = 'deploy' "
            f"{NOT_RESOLUTION} ORDER BY rowid"
        )
    ]
    by_id = {d.id: d for d in deploys}
    rows = conn.execute(
        "SELECT t.id, t.state, t.spec, r.id AS result_id, r.payload FROM tasks t "
        "LEFT JOIN results r ON r.task_id = t.id AND r.status = 'done' WHERE t.kind = 'benchmark' "
        f"{NOT_RESOLUTION.replace('tasks.id', 't.id')} ORDER BY t.rowid"
    )
    for r in rows:
        deploy = by_id.get(json.loads(r["spec"]).get("deploy_task"))
        if deploy is not None:
            deploy.bench_id, deploy.bench_state, deploy.result_id = (
                r["id"],
                r["state"],
                r["result_id"],
            )
            deploy.figures = json.loads(r["payload"]) if r["payload"] else {}
    return deploys


SWEEP_PLOTS = "docs/assets/bench"


def sweep_plot_path(bench_id: str) -> str:
    return f"{SWEEP_PLOTS}/{bench_id}.png"


def has_sweep(d: Deployment) -> bool:
    """A `swarm bench` report with two or more concurrency levels: worth a plot."""
    levels = (d.figures.get("report") or {}).get("levels") or []
    return sum(1 for lv in levels if lv.get("concurrency")) >= 2


def write_sweep_plots(deployments: Sequence[Deployment], repo: Path) -> list[str]:
    """The PNG of every benchmarked sweep, written where its row links; returns those changed."""
    from tools.bench_plot import render_png
    from tools.benchmark import BenchmarkReport

    changed = []
    for d in deployments:
        if d.bench_state != "done" or not d.bench_id or not has_sweep(d):
            continue
        png = render_png(BenchmarkReport.model_validate(d.figures["report"]))
        path = repo / sweep_plot_path(d.bench_id)
        if not path.exists() or path.read_bytes() != png:
            atomic.write_bytes(path, png)
            changed.append(str(path.relative_to(repo)))
    return changed


def gather(
    store: Store,
    facts: FactsFile,
    findings: Sequence[Finding],
    registries: Registries,
    now: Any,
) -> Inputs:
    b = board(store, now)
    return Inputs(
        headline=b.headline,
        gpus=[(g.gpu, g.arch, g.deployments) for g in b.gpus],
        deployments=store.read(_deployments),
        facts=facts,
        findings={f.id: f for f in findings},
        registries=registries,
    )


def load_facts(path: Path) -> FactsFile:
    if not path.exists():
        return FactsFile(facts=(), conflicts=())
    try:
        return FactsFile.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc


# ---------------------------------------------------------------- sections


class Dashboard:
    def __init__(self, data: Inputs) -> None:
        self.data = data
        self.canon = Canon(data.registries)
        # the current fact of each key; superseded values are listed in the facts section
        self.facts_by_key = {f.key: f for f in data.facts.facts if f.status != "superseded"}

    def fact_for(self, d: Deployment, predicate: str) -> Fact | None:
        scope = {
            "gpu": d.spec["gpu"],
            "arch": d.arch,
            "platform": d.spec["platform"],
            "quant": d.spec.get("quant") or "default",
            "tp": d.spec.get("tp", 1),
        }
        subject = str(self.canon.name("model", d.spec["model"]))
        return self.facts_by_key.get(self.canon.key(subject, predicate, self.canon.scope(scope)))

    @staticmethod
    def mark(fact: Fact | None) -> str:
        if fact is None:
            return ""
        return fact.status if fact.conflict is None else f"{fact.status} ({fact.conflict})"

    @classmethod
    def figure(cls, fact: Fact | None) -> str:
        """A fact's value with its id and status beside it; '-' when there is no fact."""
        if fact is None or not _is_number(fact.value):
            return "-"
        return f"{_exact(fact.value)} · `{fact.id}` · {cls.mark(fact)}"

    def status(self) -> str:
        return f"**{self.data.headline}**"

    def gpus(self) -> str:
        rows = []
        for gpu, arch, count in self.data.gpus:
            spec = self.data.registries.hardware.gpu.get(gpu)
            name = (
                f"{gpu} ({spec.memory_gb:g} GB {spec.memory_type.split(' ')[0]})" if spec else gpu
            )
            rows.append((name, (arch or "-").replace("sm_", "SM"), f"{count} deployments"))
        return table(("GPU", "Arch", "Count"), rows)

    def benchmarks(self) -> str:
        """Each benchmarked deployment with its facts' values: the number printed is the value of
        the fact whose id stands beside it, never the catalog's figure."""
        parts = []
        for gpu, _, _ in self.data.gpus:
            done = [
                d for d in self.data.deployments if d.spec["gpu"] == gpu and d.bench_state == "done"
            ]
            rows = []
            for d in done:
                single = self.fact_for(d, "decode_tps_single_stream")
                batched = self.fact_for(d, "throughput_tps_batched")
                plot = (
                    f"[sweep]({sweep_plot_path(d.bench_id)})"
                    if has_sweep(d) and d.bench_id
                    else None
                )
                sort = float(single.value) if single and _is_number(single.value) else 0.0
                row = (
                    self.figure(single),
                    self.figure(batched),
                    d.spec["model"],
                    d.spec.get("params"),
                    d.spec.get("model_type"),
                    d.spec.get("quant"),
                    d.spec["platform"],
                    d.spec.get("tp", 1),
                    d.spec.get("vram_gb"),
                    " · ".join(x for x in (d.result_id, plot) if x),
                )
                rows.append((sort, row))
            rows.sort(key=lambda r: -r[0])  # stable: ties keep queue order
            headers = (
                "Single TPS · fact · status",
                "Batched TPS · fact · status",
                "Model",
                "Params",
                "Type",
                "Quant",
                "Platform",
                "TP",
                "VRAM (spec)",
                "Run",
            )
            parts.append(f"### {gpu}\n\n" + table(headers, [r for _, r in rows]))
        return "\n\n".join(parts)

    def _listing(
        self,
        keep: Callable[[Deployment], bool],
        headers: Sequence[str],
        row: Callable[[Deployment], Sequence[object]],
    ) -> str:
        return table(headers, [row(d) for d in self.data.deployments if keep(d)])

    def working(self) -> str:
        return self._listing(
            lambda d: d.state == "done" and d.bench_state != "done",
            ("GPU", "Model", "Type", "Quant", "Platform", "Notes", "Task"),
            lambda d: (
                d.spec["gpu"],
                d.spec["model"],
                d.spec.get("model_type"),
                d.spec.get("quant"),
                d.spec["platform"],
                d.note,
                d.id,
            ),
        )

    def pending(self) -> str:
        return self._listing(
            lambda d: d.state in ("pending", "claimed"),
            ("GPU", "Model", "Quant", "Platform", "Notes", "Task"),
            lambda d: (
                d.spec["gpu"],
                d.spec["model"],
                d.spec.get("quant"),
                d.spec["platform"],
                d.note,
                d.id,
            ),
        )

    def failed(self) -> str:
        return self._listing(
            lambda d: d.state == "failed",
            ("GPU", "Model", "Quant", "Platform", "Reason", "Task"),
            lambda d: (
                d.spec["gpu"],
                d.spec["model"],
                d.spec.get("quant"),
                d.spec["platform"],
                d.note,
                d.id,
            ),
        )

    def _facts(self, predicate: str) -> list[Fact]:
        return [
            f
            for f in self.data.facts.facts
            if f.predicate == predicate and f.status != "superseded"
        ]

    def scaling(self) -> str:
        rows = []
        for fact in sorted(
            self._facts("scaling_efficiency_pct"), key=lambda f: str(f.scope.get("gpu"))
        ):
            attrs = next(
                (
                    self.data.findings[i].attributes
                    for i in fact.findings
                    if i in self.data.findings
                ),
                {},
            )
            rows.append(
                (
                    fact.scope.get("gpu"),
                    fact.subject,
                    fact.scope.get("quant"),
                    self.figure(fact).replace(" · ", "% · ", 1),
                    attrs.get("knee_par"),
                    _num(
                        float(knee)
                        if isinstance(knee := attrs.get("knee_tps"), int | float)
                        else None
                    ),
                )
            )
        return table(
            ("GPU", "Model", "Quant", "Scaling Eff · fact · status", "Knee (par)", "Knee TPS"), rows
        )

    def quant(self) -> str:
        """Batched throughput of one model family under several quantisations, per GPU."""
        families: dict[tuple[str, str], list[Fact]] = {}
        for fact in self._facts("throughput_tps_batched"):
            if fact.status == "superseded" or not _is_number(fact.value):
                continue
            quant = str(fact.scope.get("quant", ""))
            family = re.sub(
                rf"-{re.escape(quant.lower())}.*$|-(awq|fp8|nvfp4|mxfp4|w8a8|bf16).*$",
                "",
                fact.subject,
            )
            families.setdefault((str(fact.scope.get("gpu")), family), []).append(fact)
        rows = []
        for (gpu, family), group in sorted(families.items()):
            if len({f.scope.get("quant") for f in group}) < 2:
                continue
            best = max(float(f.value) for f in group)
            for f in sorted(group, key=lambda f: -float(f.value)):
                rows.append(
                    (
                        gpu,
                        family,
                        f.scope.get("quant"),
                        f.scope.get("platform"),
                        self.figure(f),
                        f"{float(f.value) / best:.2f}x",
                    )
                )
        return table(
            ("GPU", "Model family", "Quant", "Platform", "Batched TPS · fact · status", "Relative"),
            rows,
        )

    def _prose(self, prefix: str) -> list[Fact]:
        return [f for f in self._facts("statement") if f.subject.startswith(prefix)]

    def known_issues(self) -> str:
        rows = [
            (f.subject.removeprefix("workaround."), f.value, f"{f.id} · {self.mark(f)}")
            for f in self._prose("workaround.")
        ]
        return table(("Where", "Issue and workaround", "Evidence"), rows)

    def tracked_issues(self) -> str:
        cited: dict[str, list[Fact]] = {}
        for fact in self.data.facts.facts:
            for ev in fact.evidence:
                if ev.kind == "issue":
                    cited.setdefault(ev.locator, []).append(fact)
        rows = []
        for issue, facts in sorted(cited.items()):
            checks = sorted({ev.status for f in facts for ev in f.evidence if ev.locator == issue})
            rows.append((issue, "; ".join(sorted({f.subject for f in facts})), ", ".join(checks)))
        return table(("Issue", "Cited by", "Snapshot check"), rows)

    def facts(self) -> str:
        typed = ("memory_gb", "serves")
        verified = [
            f
            for f in self.data.facts.facts
            if f.status == "verified"
            and f.predicate in typed
            and not (f.predicate == "serves" and len(f.scope) > 2)
        ]
        lines = ["Verified:", ""] + [
            f"- {f.subject} {f.predicate} = {_value(f)}{_scope(f.scope)} — `{f.id}`, {f.independent_origins} "
            f'origin{"s" if f.independent_origins != 1 else ""}: "{f.statement}"'
            for f in verified
        ]
        disputes = [
            f"- ⚠ `{c.id}` {c.reason}: {c.explanation}"
            + (f" (deferred — {c.decision})" if c.state == "deferred" else "")
            + "".join(f" ({why})" for why in c.lapsed)
            for c in self.data.facts.conflicts
            if c.state in ("open", "deferred")  # a deferred dispute is still a dispute
        ]
        lines += ["", "Open disputes, one line each (`swarm triage`):", ""] + (
            disputes or ["- none"]
        )
        decided = [
            f"- `{c.id}` {c.decision}" for c in self.data.facts.conflicts if c.state == "decided"
        ]
        lines += ["", "Decisions (who, when, why; `swarm triage undo DECISION` reverses one):", ""]
        lines += decided or ["- none"]
        by_id = {f.id: f for f in self.data.facts.facts}
        superseded = [
            f"- {f.subject} {f.predicate}{_scope(f.scope)}: {_value(f)} — `{f.id}` superseded by "
            f"`{f.superseded_by}` ({_value(by_id[f.superseded_by])})"
            + (f" — {f.decided_by}" if f.decided_by else "")
            for f in self.data.facts.facts
            if f.status == "superseded" and f.superseded_by in by_id
        ]
        lines += ["", "Superseded values (kept in `facts/verified_facts.json`):", ""]
        lines += superseded or ["- none"]
        counts: dict[str, int] = {}
        for f in self.data.facts.facts:
            counts[f.status] = counts.get(f.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no facts yet"
        return f"All facts: {summary} (`facts/verified_facts.json`).\n\n" + "\n".join(lines)


def _exact(value: object) -> str:
    """A number exactly as the fact holds it (no rounding, no separators): the table's value is
    the fact's value, digit for digit."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value(fact: Fact) -> str:
    value = (
        str(fact.value).lower()
        if isinstance(fact.value, bool)
        else f"{fact.value:g}"
        if isinstance(fact.value, float)
        else str(fact.value)
    )
    return f"{value} {fact.unit}" if fact.unit else value


def _scope(scope: Mapping[str, object]) -> str:
    return f" ({', '.join(f'{k}={v}' for k, v in scope.items())})" if scope else ""


SECTIONS = {
    "status": "",
    "gpus": "### GPUs",
    "benchmarks": "### Benchmarked (sorted by single-stream TPS)",
    "working": "### Working (not yet benchmarked)",
    "pending": "### Pending",
    "failed": "### Failed",
    "scaling": "### Scaling efficiency",
    "quant": "### Quant comparison (same model family, same GPU)",
    "known_issues": "### Known issues and workarounds",
    "tracked_issues": "### Tracked upstream issues",
    "facts": "### Verified hardware and platform facts",
}


def render(data: Inputs) -> dict[str, str]:
    dash = Dashboard(data)
    return {
        name: (f"{heading}\n\n" if heading else "") + getattr(dash, name)()
        for name, heading in SECTIONS.items()
    }


def regenerate(
    store: Store, repo: Path, path: Path, now: Any, force: bool = False, write: bool = True
) -> tuple[str, str]:
    """(current text, regenerated text) of the README at path; written when write and changed.

    The dashboard shows the committed facts/ files (what git holds), not the store's findings.
    """
    data = gather(
        store,
        load_facts(repo / "facts" / "verified_facts.json"),
        read_log(repo / "facts" / "findings.jsonl"),
        Registries.load(repo / "facts"),
        now,
    )
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    updated = apply(current, render(data), force=force)
    if write and updated != current:
        atomic.write_text(path, updated)
    if write:
        write_sweep_plots(data.deployments, repo)
    return current, updated
