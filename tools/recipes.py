"""Recipes: how this lab deploys each platform on each GPU architecture (recipes/engines.toml).

A deploy task's spec (gpu, model, platform, quant, tp) plus the recipe for its platform on this
host's architecture plus the model's Hugging Face repo resolve into a DeployConfig (deploy.toml).
The task spec overrides any field (`hf_repo`, `runtime`, `deploy = {…}` for any deploy.toml field).
What cannot be resolved is listed exactly (`Resolution.missing`), never guessed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from swarm import SCHEMA_VERSION
from swarm.core.errors import InvalidInput
from swarm.core.models import Model, validation_message
from swarm.queue.specs import platform_name
from tools.deploy import DeployConfig, Platform

RECIPES = Path("recipes") / "engines.toml"
Runtime = Literal["docker", "process"]


class Workaround(Model):
    """Something the seed learnt about this platform on this arch, applied or announced."""

    note: str
    cites: str = Field(description="the seed finding's key it comes from")
    when_model: str | None = Field(None, description="only for models whose name contains this")
    when_quant: str | None = None
    env: dict[str, str] = {}
    engine_args: tuple[str, ...] = ()
    llm_api_options: dict[str, Any] = Field(
        {}, description="TensorRT-LLM extra LLM-API options (YAML), merged into the recipe's"
    )

    def applies(self, model: str, quant: str | None) -> bool:
        by_model = self.when_model is None or self.when_model.lower() in model.lower()
        by_quant = self.when_quant is None or self.when_quant.lower() == (quant or "").lower()
        return by_model and by_quant


class EngineRecipe(Model):
    platform: Platform
    arch: str = Field(pattern=r"^sm_\d{2,3}[a-z]?$")
    runtime: Runtime = "docker"
    image: str | None = Field(None, description="repo:tag (docker runtime)")
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    digest_note: str | None = Field(None, description="why there is no digest, when there is none")
    command_prefix: tuple[str, ...] = ()
    engine_args: tuple[str, ...] = ()
    quant_args: dict[str, tuple[str, ...]] = Field({}, description="per quant, e.g. AWQ")
    env: dict[str, str] = {}
    llm_api_options: dict[str, Any] = Field(
        {}, description="TensorRT-LLM extra LLM-API options, passed as a YAML file"
    )
    cites: tuple[str, ...] = Field((), description="seed findings this recipe follows")
    workaround: tuple[Workaround, ...] = ()

    @field_validator("platform", mode="before")
    @classmethod
    def _platform(cls, value: object) -> object:
        return canonical_platform(value) if isinstance(value, str) else value

    @property
    def pinned_image(self) -> str | None:
        if self.image is None:
            return None
        return f"{self.image}@{self.digest}" if self.digest else self.image


class KnownFailure(Model):
    pattern: str
    what: str
    cites: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        re.compile(pattern)
        return pattern


class ModelSource(Model):
    """A catalog model's Hugging Face repo and where it was verified, or why there is none."""

    name: str = Field(description="the catalog's model name")
    hf_repo: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$")
    source: str | None = Field(None, description="where a public source names this exact repo")
    unresolved: str | None = Field(
        None, description="why no repo is recorded, and what a person must supply"
    )

    @model_validator(mode="after")
    def _vouched(self) -> ModelSource:
        """A repo comes with the source that vouches for it; without one, the reason why."""
        if self.hf_repo and not self.source:
            raise ValueError(f"model {self.name!r}: hf_repo needs `source` (where it was verified)")
        if bool(self.hf_repo) == bool(self.unresolved):
            raise ValueError(f"model {self.name!r}: give hf_repo (with source) or unresolved")
        return self


class NotAServer(Model):
    """A catalog platform that starts no model server (a kernel build, a bespoke program)."""

    platform: str
    what: str = Field(description="what it is instead, and what a person does with it")
    task_kind: str | None = Field(None, description="the task kind it belongs to, if any")


class RecipeBook(Model):
    schema_version: int = SCHEMA_VERSION
    engine: tuple[EngineRecipe, ...] = ()
    known_failure: tuple[KnownFailure, ...] = ()
    model: tuple[ModelSource, ...] = ()
    not_a_server: tuple[NotAServer, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> RecipeBook:
        """One recipe per platform and arch, one repo per model name: a second would be ignored."""
        for label, keys in (
            ("[[engine]] platform/arch", [(e.platform, e.arch) for e in self.engine]),
            ("[[model]] name", [m.name for m in self.model]),
        ):
            seen = set()
            for key in keys:
                if key in seen:
                    raise ValueError(f"{label} {key} appears twice")
                seen.add(key)
        return self

    def recipe(self, platform: str, arch: str) -> EngineRecipe | None:
        return next((e for e in self.engine if e.platform == platform and e.arch == arch), None)

    def hf_repo(self, model: str) -> str | None:
        return next((m.hf_repo for m in self.model if m.name == model), None)

    def why_no_repo(self, model: str) -> str | None:
        return next((m.unresolved for m in self.model if m.name == model), None)

    def server_less(self, platform: str) -> NotAServer | None:
        return next((n for n in self.not_a_server if n.platform == platform), None)

    def known(self, log: str) -> list[KnownFailure]:
        """The seed's known failures whose pattern the log matches."""
        return [f for f in self.known_failure if re.search(f.pattern, log)]


def canonical_platform(name: str) -> str:
    return platform_name(name)  # the project's one alias table (facts/aliases.toml)


def load_book(path: Path) -> RecipeBook:
    """Raises InvalidInput naming the file and the field."""
    try:
        return RecipeBook.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise InvalidInput(f"no recipe book at {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {validation_message(exc)}") from exc


class AppliedWorkaround(Model):
    note: str
    cites: str


class Resolution(Model):
    """A deploy task resolved against the recipes: the config, or exactly what is missing."""

    schema_version: int = SCHEMA_VERSION
    task_id: str
    platform: str
    arch: str | None
    runtime: Runtime | None = None
    keep: bool = False
    config: DeployConfig | None = None
    image_pinned: bool = False
    image_note: str | None = None
    recipe_cites: tuple[str, ...] = ()
    workarounds: tuple[AppliedWorkaround, ...] = ()
    missing: tuple[str, ...] = ()
    task_kind: str | None = Field(
        None, description="for a platform that is not a server: the task kind it belongs to"
    )

    @property
    def ok(self) -> bool:
        return self.config is not None


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merged key by key (extra wins): a workaround's kv_cache_config adds to the
    recipe's instead of replacing it."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _name(task_id: str) -> str:
    return re.sub(r"[^a-z0-9_.-]", "-", task_id.lower())[:63]


def resolve(
    book: RecipeBook,
    task_id: str,
    spec: dict[str, Any],
    arch: str | None,
    port: int = 8000,
    runtime: Runtime | None = None,
) -> Resolution:
    """The deploy.toml for this task on a GPU of `arch`, from recipe + spec (the spec wins)."""
    overrides = dict(spec.get("deploy") or {})
    # spec.deploy.platform names the server a person chose for a row whose platform has none
    platform = canonical_platform(str(overrides.get("platform") or spec.get("platform", "")))
    model = str(spec.get("model", ""))
    quant = spec.get("quant")
    base = Resolution(task_id=task_id, platform=platform, arch=arch, keep=bool(spec.get("keep")))
    server_less = book.server_less(platform)
    if server_less is not None:  # no recipe could make it a server: say what it is instead
        return base.model_copy(
            update={
                "missing": (f"a model server: platform {platform!r} is {server_less.what}",),
                "task_kind": server_less.task_kind,
            }
        )
    recipe = book.recipe(platform, arch) if arch else None
    hf_repo = spec.get("hf_repo") or book.hf_repo(model)
    missing = _missing(book, recipe, platform, arch, model, hf_repo)
    if missing or recipe is None:
        return base.model_copy(update={"missing": tuple(missing)})
    chosen: Runtime = runtime or spec.get("runtime") or recipe.runtime
    applied, env, args, options = _with_workarounds(recipe, model, quant)
    fields: dict[str, Any] = {
        "name": _name(task_id),
        "model": hf_repo,
        "platform": platform,
        "runtime": chosen,
        "image": recipe.pinned_image if chosen == "docker" else None,
        "command_prefix": recipe.command_prefix,
        "quant": quant,
        "tp": int(spec.get("tp") or 1),
        "gpus": tuple(str(i) for i in range(int(spec.get("tp") or 1))),
        "port": port,
        "engine_args": tuple(args),
        "env": env,
        "llm_api_options": options,
    }
    if "llm_api_options" in overrides:  # the spec's options add to the recipe's, key by key
        overrides["llm_api_options"] = merge(options, dict(overrides["llm_api_options"] or {}))
    try:
        config = DeployConfig.model_validate(fields | overrides)
    except ValidationError as exc:
        problem = validation_message(exc)
        return base.model_copy(update={"missing": (f"a valid deploy.toml: {problem}",)})
    return _planned(base, recipe, chosen, config, applied)


def _planned(
    base: Resolution,
    recipe: EngineRecipe,
    chosen: Runtime,
    config: DeployConfig,
    applied: list[Workaround],
) -> Resolution:
    """The resolution with its plan, and whether its image is pinned by a digest."""
    pinned = chosen == "process" or bool(recipe.digest) or "@sha256:" in (config.image or "")
    note = (
        None
        if pinned
        else f"unpinned: {config.image} by tag only ({recipe.digest_note or 'no digest'})"
    )
    return base.model_copy(
        update={
            "runtime": chosen,
            "config": config,
            "image_pinned": pinned,
            "image_note": note,
            "recipe_cites": recipe.cites,
            "workarounds": tuple(AppliedWorkaround(note=w.note, cites=w.cites) for w in applied),
        }
    )


def _missing(
    book: RecipeBook,
    recipe: EngineRecipe | None,
    platform: str,
    arch: str | None,
    model: str,
    hf_repo: str | None,
) -> list[str]:
    """What a person must supply before the task has a plan: an arch, a recipe, a repo."""
    missing = []
    if arch is None:
        missing.append("the GPU architecture: the task names none and this host has no GPU")
    elif recipe is None:
        have = sorted({e.platform for e in book.engine if e.arch == arch})
        missing.append(
            f"a recipe for platform {platform!r} on {arch} in {RECIPES} ([[engine]] platform = "
            f"{platform!r}, arch = {arch!r}); {arch} has recipes for: {', '.join(have) or 'none'}"
        )
    if not hf_repo:
        why = book.why_no_repo(model)
        missing.append(
            f"the Hugging Face repo of model {model!r}: "
            + (
                f"{why}"
                if why
                else f"add [[model]] name = {model!r} hf_repo = 'org/name' source = '…' to "
                f"{RECIPES}, or hf_repo to the task spec"
            )
        )
    return missing


def _with_workarounds(
    recipe: EngineRecipe, model: str, quant: Any
) -> tuple[list[Workaround], dict[str, str], list[str], dict[str, Any]]:
    """The recipe's env, engine args and LLM-API options with the workarounds that apply."""
    applied = [w for w in recipe.workaround if w.applies(model, quant)]
    env = dict(recipe.env)
    args = [*recipe.engine_args, *recipe.quant_args.get(str(quant or ""), ())]
    options = dict(recipe.llm_api_options)
    for w in applied:
        env |= w.env
        args += w.engine_args
        options = merge(options, w.llm_api_options)
    return applied, env, args, options
