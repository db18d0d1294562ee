"""Import the seed's claims and figures as findings, evidenced by the seed document (secondary).

Sources, all kept in the repo so the facts rebuild from git alone: facts/evidence/seed_README.txt
(the document), seed_findings.json (its prose claims), lab_seed.json (its tables, for the scaling
table), tasks/seed_deployments.toml (the catalog, for the benchmark figures) and
facts/seed_interpretations.toml (typed readings of some prose claims).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from swarm.facts.citations import normalise, numbers_in
from swarm.facts.findings import Evidence, EvidenceKind, NewFinding, Quote, Scalar, Tier
from swarm.facts.registry import Registries
from swarm.queue.catalog import CatalogDeployment, DeploymentStatus, read_catalog

SEED_AGENT = "seed"
DOC = "facts/evidence/seed_README.txt"
PRIMARY_DOC_PREFIXES = ("docs/reference/",)  # vendor manuals and whitepapers the lab keeps


def _seed_doc(repo: Path) -> Evidence:
    digest = hashlib.sha256((repo / DOC).read_bytes()).hexdigest()
    return Evidence(kind=EvidenceKind.doc, locator=DOC, sha256=digest, tier=Tier.secondary)


class SeedText:
    """The seed document one cell per line, as it was flattened: a table row is a run of lines.

    A figure is quoted by the row that holds it (the model's line and the lines with the value
    and the platform), so the citation proves the number instead of only naming the document.
    """

    def __init__(self, repo: Path) -> None:
        self.lines = (repo / DOC).read_text(encoding="utf-8").splitlines()
        self.reg = Registries.load(repo / "facts")

    def _matches(self, line: str, needle: Scalar) -> bool:
        if isinstance(needle, int | float) and not isinstance(needle, bool):
            return any(abs(n - needle) <= half for n, half in numbers_in(line))
        return bool(line.strip()) and self.reg.canonical("platform", line.strip()) == needle

    def row(self, model: str, *needles: Scalar, window: int = 8) -> Quote | None:
        """The shortest run of lines from the model's line that holds every needle."""
        wanted = [self.reg.canonical("platform", n) if isinstance(n, str) else n for n in needles]
        for i, line in enumerate(self.lines):
            if line.strip() != model:
                continue
            lo, hi = i, i
            for needle in wanted:
                near = [
                    j
                    for j in range(max(0, i - 3), min(len(self.lines), i + window))
                    if j != i and self._matches(self.lines[j], needle)
                ]
                if not near:
                    break
                j = min(near, key=lambda j: abs(j - i))
                lo, hi = min(lo, j), max(hi, j)
            else:
                return Quote(exact="\n".join(self.lines[lo : hi + 1]))
        return None

    def failed_row(self, model: str, platform: str, reason: str | None) -> Quote | None:
        """A failed deployment's row ending in its reason (the failures table's last column):
        the words that say it failed ("not supported", "error"), which the bare row lacks.
        Anchored on the reason, so a benchmark row of the same model and platform is not it."""
        wanted = self.reg.canonical("platform", platform)
        if reason:
            for j, line in enumerate(self.lines):
                if normalise(line) != normalise(reason):
                    continue
                for i in range(max(0, j - 4), j):
                    between = self.lines[i + 1 : j]
                    if self.lines[i].strip() == model and any(
                        self._matches(b, wanted) for b in between
                    ):
                        return Quote(exact="\n".join(self.lines[i : j + 1]))
        return self.row(model, platform)

    def phrase(self, text: str | None) -> Quote | None:
        """A phrase the document holds (whitespace aside), as a quote; None if it is not there."""
        if not text or normalise(text) not in normalise("\n".join(self.lines)):
            return None
        return Quote(exact=text)


def _quoted(doc: Evidence, quote: Quote | None) -> Evidence:
    return doc.model_copy(update={"quote": quote}) if quote else doc


def _citation(raw: dict[str, str], doc: Evidence) -> Evidence:
    kind, ref = raw["kind"], raw["ref"]
    if kind == "document":
        return doc
    if kind == "issue":
        return Evidence(kind=EvidenceKind.issue, locator=ref)
    if ref.endswith((".cu", ".cuh", ".py")):
        return Evidence(kind=EvidenceKind.file, locator=ref)
    tier = Tier.primary if ref.startswith(PRIMARY_DOC_PREFIXES) else Tier.secondary
    return Evidence(kind=EvidenceKind.doc, locator=ref, tier=tier)


def prose_findings(repo: Path) -> list[NewFinding]:
    """seed_findings.json as text findings, plus the typed readings of some of them."""
    doc, text = _seed_doc(repo), SeedText(repo)
    raw = json.loads((repo / "facts/evidence/seed_findings.json").read_text(encoding="utf-8"))
    notes = tomllib.loads((repo / "facts/seed_interpretations.toml").read_text(encoding="utf-8"))
    readings, quotes = notes["claim"], notes.get("quote", {})
    out = []
    for item in raw:
        # the passage of the document the statement paraphrases, where one is recorded
        said = _quoted(doc, text.phrase(quotes.get(item["key"])))
        evidence = tuple(_citation(c, said) for c in item["citations"])
        out.append(
            NewFinding(
                subject=item["key"],
                predicate="statement",
                value=item["statement"],
                statement=item["statement"],
                evidence=evidence,
            )
        )
        for reading in (r for r in readings if r["key"] == item["key"]):
            typed = _quoted(doc, text.phrase(reading.get("quote")))
            out.append(
                NewFinding(
                    subject=reading["subject"],
                    predicate=reading["predicate"],
                    scope=reading.get("scope", {}),
                    value=reading["value"],
                    statement=item["statement"],
                    evidence=tuple(typed if e == said else e for e in evidence),
                    attributes={"seed_key": item["key"]},
                )
            )
    return out


def _deployment_findings(d: CatalogDeployment, doc: Evidence, text: SeedText) -> list[NewFinding]:
    """A seed row's figures (single-stream and batched TPS) and whether its engine serves it."""
    attrs = {
        "params": d.params,
        "vram_gb": d.vram_gb,
        "instance": d.instance,
        "model_type": d.model_type,
        "measured": True,
    }
    out = []
    if d.status == DeploymentStatus.benchmarked and d.benchmark is not None:
        out += _benchmark_findings(d, doc, text, attrs)
    if d.status != DeploymentStatus.pending:
        out.append(_serves_finding(d, doc, text, attrs))
    return out


def _benchmark_findings(
    d: CatalogDeployment, doc: Evidence, text: SeedText, attrs: dict[str, Any]
) -> list[NewFinding]:
    assert d.benchmark is not None
    scope: dict[str, Any] = {
        "gpu": d.gpu,
        "arch": d.arch,
        "platform": d.platform,
        "quant": d.quant or "default",
        "tp": d.tp,
    }
    where = f"{d.model} on {d.gpu} with {d.platform} ({d.quant or 'default'}, TP {d.tp})"
    return [
        NewFinding(
            subject=d.model,
            predicate=predicate,
            scope=scope,
            value=value,
            unit="tokens/s",
            statement=f"{where}: {value:g} tokens/s {what}",
            evidence=(_quoted(doc, text.row(d.model, value, d.platform)),),
            attributes=attrs,
        )
        for predicate, value, what in (
            ("decode_tps_single_stream", d.benchmark.single_tps, "single-stream"),
            ("throughput_tps_batched", d.benchmark.batched_tps, "batched"),
        )
        if value is not None
    ]


def _serves_finding(
    d: CatalogDeployment, doc: Evidence, text: SeedText, attrs: dict[str, Any]
) -> NewFinding:
    serves = d.status != DeploymentStatus.failed
    serve_scope = {
        "gpu": d.gpu,
        "arch": d.arch,
        "model": d.model,
        "quant": d.quant or "default",
    }
    # The same keys for every row (a row with a model_type and one without must land on one
    # key, or `serves` true and false are both verified): the type is a described attribute,
    # which a broad claim such as "{arch: sm_120, model_type: MoE}" still reaches.
    statement = f"{d.platform} {'serves' if serves else 'failed to serve'} {d.model} on {d.gpu}"
    failed = None
    if not serves:
        statement += f": {d.reason or 'no reason recorded'}"
        failed = text.failed_row(d.model, d.platform, d.reason)
    return NewFinding(
        subject=d.platform,
        predicate="serves",
        scope=serve_scope,
        value=serves,
        statement=statement,
        evidence=(_quoted(doc, failed if failed else text.row(d.model, d.platform)),),
        attributes=attrs,
    )


def _scaling_findings(repo: Path, doc: Evidence, text: SeedText) -> list[NewFinding]:
    tables = json.loads((repo / "facts/evidence/lab_seed.json").read_text(encoding="utf-8"))
    out = []
    for row in tables["scaling"]:
        statement = (
            f"{row['model']} on {row['gpu']}: {row['scaling_eff_pct']:g}% scaling efficiency, "
            f"{row['tps']:g} tokens/s batched, knee at {row['knee_par']} ({row['knee_tps']:g} tokens/s)"
        )
        out.append(
            NewFinding(
                subject=row["model"],
                predicate="scaling_efficiency_pct",
                scope={"gpu": row["gpu"], "quant": row["quant"]},
                value=row["scaling_eff_pct"],
                unit="%",
                statement=statement,
                evidence=(_quoted(doc, text.row(row["model"], row["scaling_eff_pct"])),),
                attributes={
                    "knee_par": row["knee_par"],
                    "knee_tps": row["knee_tps"],
                    "measured": True,
                },
            )
        )
    return out


def seed_findings(repo: Path) -> list[NewFinding]:
    doc, text = _seed_doc(repo), SeedText(repo)
    catalog = read_catalog(repo / "tasks" / "seed_deployments.toml")
    figures = [f for d in catalog.deployment for f in _deployment_findings(d, doc, text)]
    return prose_findings(repo) + figures + _scaling_findings(repo, doc, text)
