"""nvcc builds of kernels/ per target, the ptxas resource report, a build cache, and an arch guard.

Each (kernel, target) is one nvcc call with an explicit `-gencode arch=compute_X,code=sm_X` pair.
Builds are cached by a hash of the sources, headers, flags, target and `nvcc --version`, so an
unchanged kernel is not rebuilt. A failed build reports its first error lines.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from swarm import SCHEMA_VERSION
from swarm.core.atomic import write_text
from swarm.core.errors import InvalidInput, NotFound, SwarmError
from swarm.core.models import Model, normalize_arch, validation_message

FLAGS = (
    "-O3",
    "-std=c++17",
    "-lineinfo",
    "-Xptxas",
    "-v",
    "-Xptxas",
    "-warn-spills,-warn-lmem-usage",
)
ENTRY = re.compile(
    r"^ptxas info\s+: Compiling entry function '(?P<fn>[^']+)' for '(?P<arch>sm_\w+)'"
)
PROPS = re.compile(r"^ptxas info\s+: Function properties for (?P<fn>\S+)")
STACK = re.compile(
    r"^\s+(?P<stack>\d+) bytes stack frame, (?P<st>\d+) bytes spill stores, (?P<ld>\d+) bytes spill loads"
)
USED = re.compile(
    r"^ptxas info\s+: Used (?P<regs>\d+) registers(?:, used (?P<barriers>\d+) barriers)?"
    r"(?:, (?P<cstack>\d+) bytes cumulative stack size)?(?:, (?P<smem>\d+) bytes smem)?(?P<cmem>(?:, \d+ bytes cmem\[\d+\])*)"
)


class KernelSpec(Model):
    name: str
    description: str
    sources: tuple[str, ...]
    headers: tuple[str, ...] = ()
    targets: tuple[str, ...]
    test: str | None = None


class Manifest(Model):
    schema_version: int = 1
    kernel: tuple[KernelSpec, ...]

    def get(self, name: str) -> KernelSpec:
        for kernel in self.kernel:
            if kernel.name == name:
                return kernel
        raise NotFound(
            f"no kernel {name!r} in kernels/manifest.toml; known: {', '.join(k.name for k in self.kernel)}"
        )


class FunctionResources(Model):
    function: str
    registers: int
    spill_stores: int = 0
    spill_loads: int = 0
    stack_bytes: int = 0
    smem_bytes: int = 0
    barriers: int = 0
    cmem_bytes: dict[str, int] = Field(
        {}, description="constant banks, where ptxas prints them (not on sm_120a)"
    )


class TargetBuild(Model):
    target: str
    ok: bool
    cached: bool
    seconds: float
    object: str | None = None
    functions: tuple[FunctionResources, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


class KernelBuild(Model):
    schema_version: int = SCHEMA_VERSION
    kernel: str
    nvcc: str
    targets: tuple[TargetBuild, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)


def load_manifest(kernels_dir: Path) -> Manifest:
    path = kernels_dir / "manifest.toml"
    try:
        return Manifest.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {validation_message(exc)}") from exc


def nvcc_version(nvcc: str = "nvcc") -> str:
    if shutil.which(nvcc) is None:
        raise SwarmError(f"{nvcc} is not on PATH: kernel builds need the CUDA toolkit")
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def gencode(target: str) -> list[str]:
    arch = normalize_arch(target).removeprefix("sm_")
    return ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]


def _demangle(names: list[str]) -> dict[str, str]:
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(
        ["c++filt"], input="\n".join(names), capture_output=True, text=True, check=False
    ).stdout
    pretty = out.splitlines()
    return {
        n: re.sub(r"^\(anonymous namespace\)::", "", p) for n, p in zip(names, pretty, strict=False)
    }


def parse_ptxas(log: str) -> list[FunctionResources]:
    """Per entry function: registers, spills, stack, smem, barriers, cmem (one target's log)."""
    entries: dict[str, dict[str, object]] = {}
    current_entry: str | None = None
    props_fn: str | None = None
    for line in log.splitlines():
        if m := ENTRY.match(line):
            current_entry = m["fn"]
            entries.setdefault(current_entry, {"function": current_entry})
        elif m := PROPS.match(line):
            props_fn = m["fn"]
        elif (m := STACK.match(line)) and props_fn in entries:
            entries[props_fn].update(
                stack_bytes=int(m["stack"]), spill_stores=int(m["st"]), spill_loads=int(m["ld"])
            )
        elif (m := USED.match(line)) and current_entry is not None:
            cmem = {
                f"cmem[{bank}]": int(n)
                for n, bank in re.findall(r"(\d+) bytes cmem\[(\d+)\]", m["cmem"] or "")
            }
            entries[current_entry].update(
                registers=int(m["regs"]),
                barriers=int(m["barriers"] or 0),
                smem_bytes=int(m["smem"] or 0),
                cmem_bytes=cmem,
            )
    names = _demangle(list(entries))
    return [
        FunctionResources.model_validate({**e, "function": names[k]})
        for k, e in entries.items()
        if "registers" in e
    ]


def _key(
    kernel: KernelSpec, kernels_dir: Path, target: str, nvcc: str, extra: tuple[str, ...]
) -> str:
    digest = hashlib.sha256()
    for rel in (*kernel.sources, *kernel.headers):
        digest.update(rel.encode() + b"\0" + (kernels_dir / rel).read_bytes())
    digest.update(json.dumps([FLAGS, extra, target, nvcc]).encode())
    return digest.hexdigest()[:20]


def build_target(
    kernel: KernelSpec,
    kernels_dir: Path,
    target: str,
    cache: Path,
    nvcc: str,
    version: str,
    shared: bool = False,
) -> TargetBuild:
    """One nvcc call for one target (an object file, or a shared library for tests)."""
    extra = ("-Xcompiler", "-fPIC", "-shared") if shared else ("-c",)
    key = _key(kernel, kernels_dir, target, version, extra)
    folder = cache / key
    report = folder / "report.json"
    if report.exists():
        return TargetBuild.model_validate_json(report.read_text(encoding="utf-8")).model_copy(
            update={"cached": True}
        )
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (f"lib{kernel.name}.so" if shared else f"{kernel.name}.o")
    sources = [str(kernels_dir / s) for s in kernel.sources]
    if not shared and len(sources) > 1:
        extra = ("-dc",)  # several translation units in one object need relocatable device code
    cmd = [nvcc, *FLAGS, *gencode(target), *extra, *sources, "-o", str(out)]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = round(time.monotonic() - start, 2)
    log = proc.stdout + proc.stderr
    errors = [line for line in log.splitlines() if "error" in line.lower()][:8]
    warnings = [line for line in log.splitlines() if "warning" in line.lower()][:8]
    result = TargetBuild(
        target=normalize_arch(target),
        ok=proc.returncode == 0,
        cached=False,
        seconds=seconds,
        object=str(out) if proc.returncode == 0 else None,
        functions=tuple(parse_ptxas(log)) if proc.returncode == 0 else (),
        warnings=tuple(warnings),
        errors=tuple(errors or log.strip().splitlines()[-8:]) if proc.returncode else (),
    )
    if result.ok:
        write_text(report, result.model_dump_json())
    return result


def build(
    kernel: KernelSpec,
    kernels_dir: Path,
    cache: Path,
    targets: tuple[str, ...] | None = None,
    nvcc: str = "nvcc",
) -> KernelBuild:
    """Build a kernel for each target (default: the manifest's)."""
    version = nvcc_version(nvcc)
    chosen = tuple(normalize_arch(t) for t in (targets or kernel.targets))
    unknown = [t for t in chosen if t not in {normalize_arch(k) for k in kernel.targets}]
    if unknown:
        raise InvalidInput(
            f"{kernel.name} is not meant for {', '.join(unknown)}; its targets: {', '.join(kernel.targets)}"
        )
    results = tuple(build_target(kernel, kernels_dir, t, cache, nvcc, version) for t in chosen)
    return KernelBuild(kernel=kernel.name, nvcc=version, targets=results)


# ---------------------------------------------------------------- the arch guard


def runnable_target(device_arch: str, built: tuple[str, ...]) -> str | None:
    """The built target whose code this device can run, or None.

    Arch-specific targets ('a') run only on exactly their arch: sm_100a code on an SM120 GPU, or
    sm_120a code on an SM121 one, is refused. A plain target runs on its arch or a newer one of
    the same major version.
    """
    device = normalize_arch(device_arch)
    dev_num = int(device.removeprefix("sm_").rstrip("af"))
    for target in built:
        number = int(target.removeprefix("sm_").rstrip("af"))
        if target.endswith(("a", "f")):
            if number == dev_num:
                return target
        elif number // 10 == dev_num // 10 and number <= dev_num:
            return target
    return None


class TestOutcome(Model):
    status: Literal["passed", "failed", "not run"]
    reason: str
    details: dict[str, object] = {}


class KernelReport(Model):
    """What `swarm kernel build` returns and a kernel task stores as its result."""

    schema_version: int = SCHEMA_VERSION
    device: str | None = Field(
        None, description="the GPU here, e.g. 'NVIDIA H100 80GB HBM3 (sm_90)'"
    )
    builds: tuple[KernelBuild, ...]
    tests: dict[str, TestOutcome] = {}

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.builds) and all(
            t.status != "failed" for t in self.tests.values()
        )


def _device() -> tuple[str | None, str | None, str]:
    """(arch, description, why-none) of the first GPU NVML sees."""
    from tools.gpu import NvmlSource

    inventory = NvmlSource().read()
    if not inventory.gpus:
        return None, None, inventory.note or "no GPU"
    gpu = inventory.gpus[0]
    return gpu.arch, f"{gpu.name} ({gpu.arch})", ""


def _run_test(
    kernel: KernelSpec,
    kernels_dir: Path,
    cache: Path,
    device_arch: str | None,
    why: str,
    nvcc: str,
    version: str,
) -> TestOutcome:
    from tools import kernel_check

    built = tuple(normalize_arch(t) for t in kernel.targets)
    if device_arch is None:
        return TestOutcome(status="not run", reason=f"not run: no GPU here ({why})")
    target = runnable_target(device_arch, built)
    if target is None:
        return TestOutcome(
            status="not run",
            reason=f"not run: no {' or '.join(built)} device here (found {device_arch}); "
            "code built for one arch is never run on another",
        )
    lib = build_target(kernel, kernels_dir, target, cache, nvcc, version, shared=True)
    if not lib.ok or lib.object is None:
        return TestOutcome(
            status="failed",
            reason=f"the {target} test library did not build",
            details={"errors": list(lib.errors)},
        )
    if kernel.test == "mma":
        checks = kernel_check.check_mma(lib.object, kernels_dir)
    else:
        checks = kernel_check.check_nvfp4(kernel_check.Library(lib.object), kernels_dir)
    failed = [c for c in checks if c["mismatches"]]
    status: Literal["passed", "failed"] = "failed" if failed else "passed"
    reason = f"{len(checks) - len(failed)}/{len(checks)} checks match the reference on {device_arch} ({target} code)"
    return TestOutcome(status=status, reason=reason, details={"checks": checks})


def build_and_test(
    kernels_dir: Path,
    cache: Path,
    names: tuple[str, ...] = (),
    targets: tuple[str, ...] | None = None,
    test: bool = False,
    nvcc: str = "nvcc",
) -> KernelReport:
    """Build the named kernels (default: all) and, with test, check them on the GPU here."""
    manifest = load_manifest(kernels_dir)
    kernels = [manifest.get(n) for n in names] if names else list(manifest.kernel)
    version = nvcc_version(nvcc)
    builds = []
    for kernel in kernels:
        chosen = tuple(
            t
            for t in (targets or kernel.targets)
            if normalize_arch(t) in {normalize_arch(k) for k in kernel.targets}
        )
        if not chosen:
            continue  # asked for an arch this kernel is not built for (e.g. mma on sm_89)
        builds.append(build(kernel, kernels_dir, cache, chosen, nvcc))
    tests: dict[str, TestOutcome] = {}
    arch, description = None, None
    if test:
        arch, description, why = _device()
        for kernel in kernels:
            if kernel.test:
                tests[kernel.name] = _run_test(kernel, kernels_dir, cache, arch, why, nvcc, version)
    if not builds:
        raise InvalidInput(
            f"none of {', '.join(k.name for k in kernels)} is built for {', '.join(targets or ())}"
        )
    return KernelReport(device=description, builds=tuple(builds), tests=tests)
