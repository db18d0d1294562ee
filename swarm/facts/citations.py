"""Offline citation checks: each piece of evidence against the repo, git and the store, and what
it proves about the claim that cites it.

A check answers two questions. Is the citation intact (`status`: the path stays inside the repo,
the snapshot's sha256 matches, the quote is still there, the run and the commit exist)? And what
does it prove about *this* claim (`strength`: a tier, or None when it is only context)? The
strength is derived here, never taken from the finding: a run is local evidence only if its task
finished done, its named metric equals the value within the predicate's tolerance and the agent
that reported it is registered on hardware matching the claim's gpu/arch, the metric is one
facts/predicates.toml says measures the predicate and the task ran the claim's model; a test
only if its report is committed and says it passed, and then only `true`, or a number or text
its case's output holds; a file, document, commit, issue or URL supports a value only with a
quote containing it. No number inside a name of the claim (RTX 4090, Llama 3 70B) is a value.
A declared tier can only lower what a citation proves (a vendor manual cited as `doc` may say
primary), never raise it above the kind's ceiling.

Bounded work: files are hashed and searched in 1 MiB chunks (memory stays well under 64 MB for
any file); the fuzzy fallback reads at most FUZZY_MAX_BYTES; a file over QUOTE_SEARCH_MAX_BYTES is
checked by hash only, and the outcome says so. A check never reaches the network.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import math
import re
import subprocess
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm.core.errors import InvalidInput
from swarm.core.models import Model
from swarm.facts import junit, units
from swarm.facts.findings import TIER_RANK, Evidence, EvidenceKind, Finding, Quote, Scalar, Tier

CheckStatus = Literal["ok", "drifted", "broken", "unverifiable-offline"]
ISSUE_RE = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}#[1-9][0-9]*$")
SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
FUZZY_ACCEPT = (
    90.0  # rapidfuzz partial_ratio: at or above this a quote has drifted, below it is gone
)
CHUNK = 1 << 20
FUZZY_MAX_BYTES = 4 << 20  # the fuzzy fallback aligns against the whole text: only this small
QUOTE_SEARCH_MAX_BYTES = 64 << 20  # above this a file is checked by its sha256 only

# What each kind of citation can prove at best, and what it proves when it declares nothing.
CEILING = {
    EvidenceKind.run: Tier.local,
    EvidenceKind.test: Tier.local,
    EvidenceKind.commit: Tier.primary,
    EvidenceKind.file: Tier.primary,
    EvidenceKind.issue: Tier.primary,
    EvidenceKind.doc: Tier.primary,
    EvidenceKind.url: Tier.primary,
}
DEFAULT = {
    **CEILING,
    EvidenceKind.doc: Tier.secondary,
    EvidenceKind.url: Tier.secondary,
}


class Check(Model):
    status: CheckStatus = Field(description="is the citation intact")
    message: str
    score: float | None = None
    strength: Tier | None = Field(
        None, description="what it proves about this claim; None: context, shown but not counted"
    )
    origin: str | None = Field(
        None, description="who stands behind it: agent@host for a run, else the report or source"
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="a run's recorded engine, driver, CUDA, image digest"
    )
    replicates: str | None = Field(
        None, description="a run the lab queued to settle this fact key (swarm/lab/replication.py)"
    )


class RunGpu(Model):
    name: str
    arch: str | None = None


class RunRecord(Model):
    """A result as run evidence needs it: its outcome, its task's state, who ran it and where."""

    id: str
    task_id: str | None = None
    status: str | None = Field(None, description="the result's status (done, failed)")
    task_state: str | None = None
    agent: str | None = None
    registered: bool = Field(
        False, description="the reporting agent registered its hardware (the catalog never does)"
    )
    measured: dict[str, str] = Field(
        default_factory=dict, description="what the task measured: model, gpu, platform, quant"
    )
    host: str | None = None
    gpus: tuple[RunGpu, ...] = Field((), description="the reporting agent's registered GPUs")
    payload: dict[str, Any] = {}
    replicates: str | None = Field(
        None, description="the fact key its task was queued to settle, when it is a replication"
    )

    @property
    def environment(self) -> dict[str, str]:
        """What the run recorded of its software stack (payload key `environment`)."""
        env = self.payload.get("environment")
        if not isinstance(env, dict):
            return {}
        return {k: str(env[k]) for k in ENVIRONMENT_KEYS if env.get(k) not in (None, "")}


# What a run's payload may record of its stack, in the order a supersession message names them.
ENVIRONMENT_KEYS = ("engine", "engine_version", "driver", "cuda", "image_digest")


@dataclass
class _File:
    """What one pass learned about a cited file: checked once, however many findings cite it."""

    path: Path | Check
    size: int = 0
    digest: str | None = None
    text: str | None = None  # kept for files up to FUZZY_MAX_BYTES, within the pass's budget
    loose: str | None = None
    tracked: bool | None = None  # committed to the lab's git repo (asked once, for test reports)


CACHE_BYTES = 32 << 20  # the texts one pass keeps, so memory stays bounded however many files


@dataclass(frozen=True)
class CheckContext:
    repo: Path
    run: Callable[[str], RunRecord | None] = lambda _rid: None
    # the claim's predicate tolerance (relative, absolute), by predicate name
    tolerance: Callable[[str], tuple[float, float]] = lambda _p: (0.0, 0.0)
    unit: Callable[[str], str | None] = lambda _p: None  # the predicate's unit
    # canonical GPU name and that GPU's arch, so a run's hardware can be compared with the scope
    gpu_name: Callable[[str], str] = lambda name: name
    gpu_arch: Callable[[str], str | None] = lambda _name: None
    arch_name: Callable[[str], str] = lambda arch: arch
    model_name: Callable[[str], str] = lambda name: name.lower()
    subject_kind: Callable[[str], str] = lambda _predicate: "model"
    # the run result keys that measure a predicate (facts/predicates.toml `metrics`)
    metrics: Callable[[str], tuple[str, ...]] = lambda _predicate: ()
    # GPU and model names the registries know: a number inside one is not a claim's value
    names: tuple[str, ...] = ()
    files: dict[str, _File] = field(default_factory=dict)
    kept: list[int] = field(default_factory=lambda: [0])  # bytes of text files holds now


# Checks are frozen, and a pass makes the same few outcomes for 100k citations of a few sources:
# one object each (the cache is bounded; an outcome made again after eviction is only rebuilt).
@functools.lru_cache(maxsize=2048)
def _outcome(
    status: CheckStatus,
    message: str,
    score: float | None = None,
    strength: Tier | None = None,
    origin: str | None = None,
) -> Check:
    return Check(status=status, message=message, score=score, strength=strength, origin=origin)


def _ok(message: str, score: float | None = None, strength: Tier | None = None) -> Check:
    return _outcome("ok", message, score, strength)


def _broken(message: str) -> Check:
    return _outcome("broken", message)


def _plain(check: Check) -> bool:
    """No run-only fields: the check is its status, message, score, strength and origin."""
    return not check.environment and check.replicates is None


def _context(check: Check, why: str) -> Check:
    message = f"{check.message}; {why}"
    if _plain(check):
        return _outcome(check.status, message, check.score, None, check.origin)
    return check.model_copy(update={"strength": None, "message": message})


def _supports(check: Check, strength: Tier, origin: str) -> Check:
    """check, as support of this strength from this origin."""
    if _plain(check):
        return _outcome(check.status, check.message, check.score, strength, origin)
    return check.model_copy(update={"strength": strength, "origin": origin})


def normalise(text: str) -> str:
    return _collapse(_typography(text)).strip()


def _typography(text: str) -> str:
    if text.isascii():  # already NFKC, and none of the quotes below: most quotes, 100k a pass
        return text
    return (
        unicodedata.normalize("NFKC", text)
        .replace("\u2019", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )


SPACES = re.compile(r"\s+")


def _collapse(text: str) -> str:
    return SPACES.sub(" ", text)


# ---------------------------------------------------------------- numbers in quotes

NUMBER_RE = re.compile(
    r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:[,\u202f\u00a0]\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"(?:\s?(?P<k>[kK])(?![\w]))?(?![\w.]|\.\d)"
)


SEPARATORS = str.maketrans({",": None, "\u202f": None, "\u00a0": None, "\u2212": "-"})


NAME_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=65536)
def _numbered(name: str) -> str | None:
    """The pattern of a name that holds a standalone number ('RTX 4090', 'Llama 3 70B'), its
    words joined by any spaces, '-' or '_'; None for a name without one ('Qwen3-14B')."""
    words = NAME_WORD.findall(normalise(name))
    if len(words) > 1 and any(w.isdigit() for w in words):
        return r"[\s_\-]*".join(map(re.escape, words))
    return None


@functools.lru_cache(maxsize=65536)
def _digits(name: str) -> tuple[str, ...]:
    """The standalone numbers of a name ('Llama 3 70B' -> ('3',)): a text without them
    cannot hold the name."""
    return tuple(w for w in NAME_WORD.findall(normalise(name)) if w.isdigit())


def numbered_names(names: Iterable[str]) -> tuple[str, ...]:
    """Only the names whose digits could be taken for a value, each once: what a check context
    keeps, so the pattern built from them is one per lab, not one per claim."""
    return tuple(sorted({n for n in names if _numbered(n) is not None}))


@functools.lru_cache(maxsize=4096)
def _names_re(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for the names that hold a standalone number, in any case; None when none
    does."""
    parts = {part for name in names if (part := _numbered(name)) is not None}
    if not parts:
        return None
    alternatives = "|".join(sorted(parts, key=len, reverse=True))  # longest name first
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)


def without_names(text: str, names: tuple[str, ...], own: tuple[str, ...] = ()) -> str:
    """The text with every one of the names blanked out, so their digits are not values: a
    claim's own names first, then the lab's (one cached pattern)."""
    text = normalise(text)
    own = tuple(n for n in own if all(d in text for d in _digits(n)))  # else none to blank
    if own:
        text = _blank_words(text, own)
    pattern = _names_re(names)
    return text if pattern is None else pattern.sub(" ", text)


GAP = re.compile(r"[\s_\-]*")


@functools.lru_cache(maxsize=65536)
def _words(name: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in NAME_WORD.findall(normalise(name)))


def _blank_words(text: str, names: tuple[str, ...]) -> str:
    """Blank each name's words where they stand in order (any case, joined by spaces, '-' or
    '_'), as the lab's pattern does, without compiling a pattern per claim (a lab of 10k
    subjects would compile 10k)."""
    tokens = list(NAME_WORD.finditer(text))
    lowered = [t.group(0).lower() for t in tokens]
    spans = []
    for name in names:
        words = _words(name)
        n = len(words)
        for i in range(len(tokens) - n + 1):
            if tuple(lowered[i : i + n]) == words and all(
                GAP.fullmatch(text, tokens[j].end(), tokens[j + 1].start())
                for j in range(i, i + n - 1)
            ):
                spans.append((tokens[i].start(), tokens[i + n - 1].end()))
    out, at = [], 0
    for start, end in sorted(spans):
        if end <= at:
            continue
        out.append(text[at : max(start, at)] + " ")
        at = end
    return "".join(out) + text[at:]


def numbers_in(
    text: str, names: tuple[str, ...] = (), own: tuple[str, ...] = ()
) -> list[tuple[float, float]]:
    """Every number written in the text, with the half-step of its last written digit.

    '6,396' -> (6396, 0.5); '20.2' -> (20.2, 0.05); '1.8k' -> (1800, 50); a Unicode minus counts as '-'.
    Digits inside words ('Qwen3-14B', 'sm_120') are not numbers, and neither are those of the
    names given ('RTX 4090' names a GPU: its 4090 is no throughput).
    """
    out = []
    for m in NUMBER_RE.finditer(without_names(text, names, own)):  # it normalises the text
        raw = m.group(0)
        scale = 1000.0 if m.group("k") else 1.0
        digits = raw.rstrip("kK ").translate(SEPARATORS)
        try:
            value = float(digits)
        except ValueError:
            continue
        mantissa, _, power = digits.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        exponent = int(power) if power else 0
        if not math.isfinite(value):
            continue  # '1e400' is no number a claim can hold
        try:
            half = 0.5 * 10.0 ** (exponent - decimals) * scale
        except OverflowError:
            continue  # '0e400': no half-step a float holds
        out.append((value * scale, half))
    return out


# Wording a quote uses to say yes or no. A negation anywhere makes it say no ("not supported",
# "fails", "doesn't work"); otherwise a word of the first set makes it say yes. Neither: it says
# nothing about a true/false claim (a table row naming a model is not "it works").
SAYS_YES = frozenset({
    "true", "yes", "works", "work", "worked", "working", "supported", "supports", "serves",
    "served", "serving", "runs", "ran", "running", "passes", "passed", "pass", "succeeds",
    "succeeded", "success", "successful", "ok", "okay", "compatible", "correct", "correctly",
    "matches", "match", "matched", "identical", "\u2713", "\u2714", "\u2705",
})  # fmt: skip
SAYS_NO = frozenset({
    "false", "no", "not", "never", "fails", "fail", "failed", "failing", "failure",
    "unsupported", "broken", "breaks", "error", "errors", "crash", "crashes", "crashed",
    "cannot", "cant", "unable", "incompatible", "oom", "wrong", "mismatch", "mismatches",
    "traps", "trap", "unrecognized", "unrecognised", "overflow", "overflows", "stuck", "hangs",
    "incompatibility", "\u2717",
    "\u2718", "\u274c",
})  # fmt: skip
WORD_RE = re.compile(r"[^\W_]+(?:'t)?|[\u2713\u2714\u2705\u2717\u2718\u274c]")


def says(text: str) -> bool | None:
    """What a passage says to a yes/no claim: False on any negation, True on wording that
    affirms, None when it says neither."""
    words = WORD_RE.findall(_typography(text).casefold())
    if any(w in SAYS_NO or w.endswith("n't") for w in words):
        return False
    if any(w in SAYS_YES for w in words):
        return True
    return None


def _folded(text: str) -> str:
    return normalise(text).casefold()


def quote_holds(
    value: Scalar, quote: Quote, names: tuple[str, ...] = (), own: tuple[str, ...] = ()
) -> bool:
    """Does the quote contain the value? Numbers as written (rounded, separators, 'k'), never
    a number inside one of the names (the claim's subject, GPU, model); a true/false value as
    the quote's wording says it (`says`); text case- and whitespace-insensitively."""
    return text_holds(value, quote.exact, names, own)


def text_holds(
    value: Scalar, text: str, names: tuple[str, ...] = (), own: tuple[str, ...] = ()
) -> bool:
    """quote_holds for any text (a quote, a test case's output)."""
    if isinstance(value, bool):
        return says(text) is value
    if isinstance(value, str):
        wanted = _folded(value)
        return bool(wanted) and wanted in _folded(text)
    return any(
        abs(n - value) <= half + 1e-9 * max(1.0, abs(value))
        for n, half in numbers_in(text, names, own)
    )


def claim_names(finding: Finding, ctx: CheckContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names the registries know and those the claim is about (its subject, its scope's
    GPU, model, arch...): the numbers inside them are never the claim's value."""
    own = [finding.subject, *(v for v in finding.scope.values() if isinstance(v, str))]
    gpu = finding.scope.get("gpu")
    if isinstance(gpu, str):
        own.append(ctx.gpu_name(gpu))
    # only names holding a number count: the lab's pattern is built once, a claim's is small
    return ctx.names, numbered_names(own)


# ---------------------------------------------------------------- streamed text


def _chunks(read: Callable[[int], bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while data := read(CHUNK):
        yield decoder.decode(data)
    yield decoder.decode(b"", final=True)


def contains(chunks: Iterable[str], needles: tuple[str, str]) -> Literal["exact", "normalised", ""]:
    """Whether the stream holds the exact needle, or the normalised one once normalised.

    Streams: each window keeps only the tail a match could straddle.
    """
    exact, loose = needles
    tail_raw, tail_norm = "", ""
    found_norm = False
    for chunk in chunks:
        buf = tail_raw + chunk
        if exact in buf:
            return "exact"
        tail_raw = buf[-(len(exact) - 1) :] if len(exact) > 1 else ""
        if not found_norm and loose:
            norm = _collapse(tail_norm + _collapse(_typography(chunk)))
            found_norm = loose in norm
            tail_norm = norm[-len(loose) :]
    return "normalised" if found_norm else ""


def anchor(quote: Quote, text: str) -> Check:
    """Find a quote in a text: exact, then whitespace-normalised, then fuzzy with a score."""
    return _anchor(quote, lambda: iter((text,)), len(text.encode()), lambda: text)


def _anchor(
    quote: Quote, chunks: Callable[[], Iterator[str]], size: int, whole: Callable[[], str]
) -> Check:
    how = contains(chunks(), (quote.exact, normalise(quote.exact)))
    if how == "exact":
        return _ok("quote found exactly")
    if how == "normalised":
        return _ok("quote found once whitespace and typography are normalised")
    if size > FUZZY_MAX_BYTES:
        return _broken(f"quote not found (no fuzzy search over {FUZZY_MAX_BYTES >> 20} MiB)")
    from rapidfuzz import fuzz  # imported only when a quote has moved

    text = normalise(whole())
    match = fuzz.partial_ratio_alignment(normalise(quote.exact), text)
    if match is not None and match.score >= FUZZY_ACCEPT:
        found = text[match.dest_start : match.dest_end]
        return Check(
            status="drifted",
            score=round(match.score, 1),
            message=f"quote changed (similarity {match.score:.0f}%): now reads {found[:120]!r}",
        )
    return _broken("quote not found in the cited text")


def repo_file(repo: Path, rel: str) -> Path | Check:
    """The file a repo path names, or why it cannot be used (escape, missing, odd name)."""
    if "\x00" in rel:
        return _broken(f"{rel!r} is not a path (it holds a NUL byte)")
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        return _broken(f"{rel!r} must be a path inside the repo (no absolute path, no '..')")
    path = repo / rel
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return _broken(f"{rel} does not exist in the repo")
    if not resolved.is_relative_to(repo.resolve()):
        return _broken(f"{rel} resolves outside the repo (through a symlink)")
    if not resolved.is_file():
        return _broken(f"{rel} is not a file")
    return resolved


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while data := fh.read(CHUNK):
            digest.update(data)
    return digest.hexdigest()


def _file_chunks(path: Path) -> Iterator[str]:
    with path.open("rb") as fh:
        yield from _chunks(fh.read)


def _file(ctx: CheckContext, rel: str) -> _File:
    known = ctx.files.get(rel)
    if known is None:
        found = repo_file(ctx.repo, rel)
        known = _File(found, 0 if isinstance(found, Check) else found.stat().st_size)
        ctx.files[rel] = known
    return known


def _text(ctx: CheckContext, known: _File) -> tuple[str, str] | None:
    """The file's text and its normalised text, when small enough to keep for this pass."""
    if known.text is None:
        if known.size > FUZZY_MAX_BYTES or ctx.kept[0] + known.size > CACHE_BYTES:
            return None
        assert isinstance(known.path, Path)
        known.text = known.path.read_bytes().decode("utf-8", errors="replace")
        ctx.kept[0] += known.size
        known.loose = normalise(known.text)
    assert known.loose is not None
    return known.text, known.loose


def _check_text(ctx: CheckContext, rel: str, sha256: str | None, quote: Quote | None) -> Check:
    known = _file(ctx, rel)
    if isinstance(known.path, Check):
        return known.path
    found = known.path
    if sha256 is not None:
        if known.digest is None:
            known.digest = file_sha256(found)
        if known.digest != sha256:
            return _broken(f"{rel} changed since it was cited (sha256 differs)")
    hashed = " and its sha256 matches" if sha256 else ""
    if quote is None:
        return _ok(f"{rel} exists{hashed}")
    if known.size > QUOTE_SEARCH_MAX_BYTES:
        return _ok(
            f"{rel} is over {QUOTE_SEARCH_MAX_BYTES >> 20} MiB: checked by hash only"
            f"{' (matches)' if sha256 else ' (no sha256 given)'}, quote not searched"
        )
    kept = _text(ctx, known)
    if kept is not None:
        text, loose = kept
        if quote.exact in text:
            return _ok("quote found exactly")
        if normalise(quote.exact) in loose:
            return _ok("quote found once whitespace and typography are normalised")
        return _anchor(quote, lambda: iter(()), known.size, lambda: text)
    return _anchor(
        quote,
        lambda: _file_chunks(found),
        known.size,
        lambda: found.read_bytes().decode("utf-8", errors="replace"),
    )


def _document_strength(
    evidence: Evidence, finding: Finding, intact: Check, ctx: CheckContext
) -> Check:
    """A document, file, commit, issue or URL supports a value only through a quote holding it."""
    if intact.status != "ok":
        return intact
    if evidence.quote is None:
        return _context(intact, "no quote: context, not support")
    if "quote not searched" in intact.message:
        return _context(intact, "an unsearched quote supports nothing")
    if not quote_holds(finding.value, evidence.quote, *claim_names(finding, ctx)):
        why = f"the quote does not contain the value {finding.value!r}"
        if quote_holds(finding.value, evidence.quote):
            why += " (only inside a GPU, model or other name, which is no value)"
        return _context(intact, why)
    return _supports(intact, capped(evidence), source(evidence))


def source(evidence: Evidence) -> str:
    """A document's origin is the source itself: twenty agents citing one page are one origin."""
    return f"{evidence.kind}:{evidence.snapshot or evidence.locator}".lower()


def capped(evidence: Evidence) -> Tier:
    """The declared tier (or the kind's default), never above what the kind can prove."""
    ceiling = CEILING[evidence.kind]
    wanted = evidence.tier or DEFAULT[evidence.kind]
    return wanted if TIER_RANK[wanted] <= TIER_RANK[ceiling] else ceiling


# ---------------------------------------------------------------- runs


def _agree(a: float, b: float, tolerance: tuple[float, float]) -> bool:
    rel, abs_ = tolerance
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)), 1e-9 * max(1.0, abs(a)))


def _hardware_mismatch(record: RunRecord, finding: Finding, ctx: CheckContext) -> str | None:
    gpu, arch = finding.scope.get("gpu"), finding.scope.get("arch")
    if gpu is None and arch is None:
        return None
    names = {ctx.gpu_name(g.name) for g in record.gpus}
    archs = {ctx.arch_name(g.arch) for g in record.gpus if g.arch}
    archs |= {a for n in names if (a := ctx.gpu_arch(n))}
    where = f"agent {record.agent or '?'} is registered with " + (
        ", ".join(sorted(names)) or "no GPU"
    )
    if gpu is not None and ctx.gpu_name(str(gpu)) not in names:
        return f"{where}, not {gpu}"
    if arch is not None and ctx.arch_name(str(arch)) not in archs:
        return f"{where}, not {arch}"
    return None


def _other_model(record: RunRecord, finding: Finding, ctx: CheckContext) -> str | None:
    """The run measured another model than the one the claim is about, or names none."""
    about = (
        finding.subject
        if ctx.subject_kind(finding.predicate) == "model"
        else finding.scope.get("model")
    )
    if not isinstance(about, str):
        return None  # the claim is about no model
    ran = record.measured.get("model")
    if ran is None:
        return f"its task's spec names no model, so it measured nothing about {about}"
    if ctx.model_name(ran) == ctx.model_name(about):
        return None
    return f"the result measured {ran}, not {about}"


def _in_predicate_unit(finding: Finding, value: float, ctx: CheckContext) -> tuple[float, str]:
    """The finding's number in its predicate's unit, and how to name it in a message."""
    target = ctx.unit(finding.predicate)
    if not finding.unit or not target or finding.unit == target:
        return value, f"{value:g}"
    try:
        converted = units.convert(value, finding.unit, target)
    except InvalidInput:  # refused at input since; compared as written
        return value, f"{value:g} {finding.unit}"
    return converted, f"{value:g} {finding.unit} ({converted:g} {target})"


def _check_run(evidence: Evidence, finding: Finding, ctx: CheckContext) -> Check:
    record = ctx.run(evidence.locator)
    if record is None:
        return _broken(f"no result {evidence.locator} in the store or facts/runs.jsonl")
    if evidence.metric is None:
        return _ok(f"result {evidence.locator} exists; names no metric: context, not support")
    recorded = record.payload.get(evidence.metric)
    if recorded is None:
        return _broken(f"result {evidence.locator} has no {evidence.metric!r}")
    measures = ctx.metrics(finding.predicate)
    if evidence.metric not in measures:
        which = (
            f"the metrics that do are {', '.join(measures)}"
            if measures
            else "no run metric measures it"
        )
        return _ok(
            f"result {evidence.locator} exists, but {evidence.metric!r} does not measure "
            f"{finding.predicate} ({which}, facts/predicates.toml): supports nothing"
        )
    value, written = finding.value, f"{finding.value!r}"
    if isinstance(value, bool):  # 1 == True in Python; a run's 1 is not 'true'
        same = isinstance(recorded, bool) and recorded is value
    elif not isinstance(value, int | float):
        same = isinstance(recorded, str) and recorded == value
    else:
        # a run records its metric in the predicate's unit: 11 tokens/min is not a run's 11
        value, written = _in_predicate_unit(finding, value, ctx)
        same = (
            isinstance(recorded, int | float)
            and not isinstance(recorded, bool)
            and _agree(float(recorded), float(value), ctx.tolerance(finding.predicate))
        )
    if not same:
        return _broken(
            f"result {evidence.locator} says {evidence.metric} = {recorded!r}, the finding {written}"
        )
    intact = _ok(f"result {evidence.locator} records {evidence.metric} = {recorded}")
    if record.status != "done" or record.task_state not in (None, "done"):
        state = record.status or "unknown"
        return _context(intact, f"the result is {state}, not done: supports nothing")
    if not record.registered:
        who = record.agent or "no one"
        return _context(intact, f"reported by {who}, no registered agent: not a run done here")
    other = _other_model(record, finding, ctx)
    if other:
        return _context(intact, f"{other}: supports nothing for this claim")
    mismatch = _hardware_mismatch(record, finding, ctx)
    if mismatch:
        return _context(intact, f"{mismatch}: supports nothing for this scope")
    origin = f"{record.agent or finding.agent}@{record.host or '?'}"
    return intact.model_copy(
        update={
            "strength": capped(evidence),
            "origin": origin,
            "environment": record.environment,
            "replicates": record.replicates,
        }
    )


# ---------------------------------------------------------------- commits, tests, snapshots


def _git_chunks(repo: Path, *args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        ["git", "-C", str(repo), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    try:
        yield from _chunks(proc.stdout.read)
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def _check_commit(evidence: Evidence, finding: Finding, ctx: CheckContext) -> Check:
    sha = evidence.locator
    if not SHA_RE.match(sha):
        return _broken(f"{sha!r} is not a full commit sha (abbreviations are refused)")
    exists = subprocess.run(
        ["git", "-C", str(ctx.repo), "cat-file", "-e", f"{sha}^{{commit}}"],
        capture_output=True,
    )
    if exists.returncode != 0:
        return _broken(f"commit {sha[:12]} is not in this repo")
    intact = _ok(f"commit {sha[:12]} exists")
    if evidence.quote is not None:
        # the quote is searched in the commit's message and patch, streamed from git
        how = contains(
            _git_chunks(ctx.repo, "show", "--no-color", "--format=%B", sha),
            (evidence.quote.exact, normalise(evidence.quote.exact)),
        )
        if not how:
            return _broken(f"commit {sha[:12]}: quote not found in its message or patch")
        intact = _ok(f"commit {sha[:12]} exists and holds the quote")
    return _document_strength(evidence, finding, intact, ctx)


def _check_snapshotted(evidence: Evidence, finding: Finding, ctx: CheckContext, what: str) -> Check:
    if evidence.snapshot is None:
        return Check(
            status="unverifiable-offline", message=f"{what}: no local snapshot to check offline"
        )
    intact = _check_text(ctx, evidence.snapshot, evidence.sha256, evidence.quote)
    return _document_strength(evidence, finding, intact, ctx)


def _check_test(evidence: Evidence, finding: Finding, ctx: CheckContext) -> Check:
    """A test supports a claim only when its saved JUnit report says the named case passed;
    an outcome the finding declares is not evidence (it is only named beside the derived one)."""
    test = evidence.locator
    declared = f" (the finding declares {evidence.outcome!r})" if evidence.outcome else ""
    if evidence.snapshot is None:
        return Check(
            status="unverifiable-offline",
            message=f"test {test}: no saved report to read its outcome from{declared}",
        )
    intact = _check_text(ctx, evidence.snapshot, evidence.sha256, evidence.quote)
    if intact.status != "ok":
        return intact
    known = _file(ctx, evidence.snapshot)
    report = known.path
    assert isinstance(report, Path)  # _check_text answered ok: the file exists in the repo
    if not _tracked(ctx, evidence.snapshot, known):
        return _broken(
            f"test {test}: {evidence.snapshot} is not tracked in the lab's git repo: a report "
            "nobody committed proves nothing (commit it with the change it tests)"
        )
    try:
        case = junit.read_case(report, test)
    except junit.NotAReport as exc:
        return Check(
            status="unverifiable-offline",
            message=f"test {test}: {evidence.snapshot} is not a JUnit XML report ({exc}), "
            f"so its outcome cannot be derived{declared}",
        )
    if case is None:
        classname, name = junit.case_name(test)
        return _broken(
            f"test {test}: {evidence.snapshot} holds no test case {name!r} of {classname!r}"
        )
    found = _ok(f"test {test}: {evidence.snapshot} reports it {case.outcome}{declared}")
    if case.outcome != "passed":  # a failure proves little: a bug in the test, a flaky host
        return _context(found, "only a passing test supports a claim")
    if not _names(finding.subject, test, case.text):  # else any pass would prove any claim
        return _context(
            found,
            f"the case does not name {finding.subject!r}: a pass proves what its test is about, "
            "so name the subject in the test's id or record it in its output or properties",
        )
    value = finding.value
    if isinstance(value, bool):
        if not value:
            return _context(found, "a pass proves what the test asserts holds (true), not false")
    elif not text_holds(value, case.text, *claim_names(finding, ctx)):
        return _context(
            found,
            f"the case records no {value!r} in its output or properties: a pass alone proves "
            "a true/false claim only",
        )
    # one report is one origin, however many agents cite it
    return _supports(found, capped(evidence), source(evidence))


def _squashed(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _names(subject: str, test: str, text: str) -> bool:
    """Does the test case name the claim's subject (case, spaces and punctuation aside) in its
    id or in what it recorded?"""
    wanted = _squashed(subject)
    return bool(wanted) and (wanted in _squashed(test) or wanted in _squashed(text))


def _tracked(ctx: CheckContext, rel: str, known: _File) -> bool:
    """Is the file committed to (tracked by) the lab's git repo? Asked once a pass."""
    if known.tracked is None:
        asked = subprocess.run(
            ["git", "-C", str(ctx.repo), "ls-files", "--error-unmatch", "--", rel],
            capture_output=True,
        )
        known.tracked = asked.returncode == 0
    return known.tracked


def check(evidence: Evidence, finding: Finding, ctx: CheckContext) -> Check:
    """The outcome of checking one piece of evidence offline, and what it proves for finding."""
    kind = evidence.kind
    if kind in (EvidenceKind.file, EvidenceKind.doc):
        intact = _check_text(ctx, evidence.locator, evidence.sha256, evidence.quote)
        return _document_strength(evidence, finding, intact, ctx)
    if kind == EvidenceKind.run:
        return _check_run(evidence, finding, ctx)
    if kind == EvidenceKind.commit:
        return _check_commit(evidence, finding, ctx)
    if kind == EvidenceKind.test:
        return _check_test(evidence, finding, ctx)
    if kind == EvidenceKind.issue and not ISSUE_RE.match(evidence.locator):
        return _broken(f"{evidence.locator!r} is not an issue reference like owner/repo#123")
    return _check_snapshotted(evidence, finding, ctx, evidence.locator)  # issue, url
