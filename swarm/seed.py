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

from swarm.catalog import CatalogDeployment, DeploymentStatus, read_catalog
from swarm.findings import Evidence, EvidenceKind, NewFinding, Tier

SEED_AGENT = "seed"
DOC = "facts/evidence/seed_README.txt"
PRIMARY_DOC_PREFIXES = ("docs/reference/",)  # vendor manuals and whitepapers the lab keeps


def _seed_doc(repo: Path) -> Evidence:
    digest = hashlib.sha256((repo / DOC).read_bytes()).hexdigest()
    return Evidence(kind=EvidenceKind.doc, locator=DOC, sha256=digest, tier=Tier.secondary)


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
    doc = _seed_doc(repo)
    raw = json.loads((repo / "facts/evidence/seed_findings.json").read_text(encoding="utf-8"))
    readings = tomllib.loads(
        (repo / "facts/seed_interpretations.toml").read_text(encoding="utf-8")
    )["claim"]
    out = []
    for item in raw:
        evidence = tuple(_citation(c, doc) for c in item["citations"])
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
            out.append(
                NewFinding(
                    subject=reading["subject"],
                    predicate=reading["predicate"],
                    scope=reading.get("scope", {}),
                    value=reading["value"],
                    statement=item["statement"],
                    evidence=evidence,
                    attributes={"seed_key": item["key"]},
                )
            )
    return out


def _deployment_findings(d: CatalogDeployment, doc: Evidence) -> list[NewFinding]:
    scope: dict[str, Any] = {
        "gpu": d.gpu,
        "arch": d.arch,
        "platform": d.platform,
        "quant": d.quant or "default",
        "tp": d.tp,
    }
    attrs = {
        "params": d.params,
        "vram_gb": d.vram_gb,
        "instance": d.instance,
        "model_type": d.model_type,
        "measured": True,
    }
    where = f"{d.model} on {d.gpu} with {d.platform} ({d.quant or 'default'}, TP {d.tp})"
    out = []
    if d.status == DeploymentStatus.benchmarked and d.benchmark is not None:
        for predicate, value, what in (
            ("decode_tps_single_stream", d.benchmark.single_tps, "single-stream"),
            ("throughput_tps_batched", d.benchmark.batched_tps, "batched"),
        ):
            if value is not None:
                out.append(
                    NewFinding(
                        subject=d.model,
                        predicate=predicate,
                        scope=scope,
                        value=value,
                        unit="tokens/s",
                        statement=f"{where}: {value:g} tokens/s {what}",
                        evidence=(doc,),
                        attributes=attrs,
                    )
                )
    if d.status != DeploymentStatus.pending:
        serves = d.status != DeploymentStatus.failed
        serve_scope = {
            "gpu": d.gpu,
            "arch": d.arch,
            "model": d.model,
            "quant": d.quant or "default",
        }
        if d.model_type:
            serve_scope["model_type"] = d.model_type.split("-")[-1]  # 'VLM-Dense' -> 'Dense'
        statement = f"{d.platform} {'serves' if serves else 'failed to serve'} {d.model} on {d.gpu}"
        if not serves:
            statement += f": {d.reason or 'no reason recorded'}"
        out.append(
            NewFinding(
                subject=d.platform,
                predicate="serves",
                scope=serve_scope,
                value=serves,
                statement=statement,
                evidence=(doc,),
                attributes=attrs,
            )
        )
    return out


def _scaling_findings(repo: Path, doc: Evidence) -> list[NewFinding]:
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
                evidence=(doc,),
                attributes={
                    "knee_par": row["knee_par"],
                    "knee_tps": row["knee_tps"],
                    "measured": True,
                },
            )
        )
    return out


def seed_findings(repo: Path) -> list[NewFinding]:
    doc = _seed_doc(repo)
    catalog = read_catalog(repo / "tasks" / "seed_deployments.toml")
    figures = [f for d in catalog.deployment for f in _deployment_findings(d, doc)]
    return prose_findings(repo) + figures + _scaling_findings(repo, doc)
