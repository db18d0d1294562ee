"""Which GPU (if any) lets an agent run a task: pure functions over requirements and leases."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from swarm.core.models import Capabilities, GpuInfo, Requires
from swarm.facts.registry import project

GB_EPSILON = 1e-9  # float sums of GB shares must not refuse an exact fit


@dataclass
class GpuUsage:
    """Leased GB and exclusivity per GPU UUID, as read inside the claim transaction."""

    leased_gb: dict[str, float] = field(default_factory=dict)
    holders: dict[str, int] = field(default_factory=dict)
    exclusive: set[str] = field(default_factory=set)
    # GPUs a higher-priority (or older) task is waiting to get a share of: later tasks may not
    # take them, or small tasks would starve a waiting exclusive benchmark forever.
    reserved: set[str] = field(default_factory=set)
    # Model servers a done deploy left running (swarm/queue/gpu_holds.py): deploy task id -> GPU UUID.
    servers: dict[str, str] = field(default_factory=dict)
    # Every lease row (task id, GPU UUID, GB, exclusive), so that a view can leave some out.
    rows: list[tuple[str, str, float, bool]] = field(default_factory=list)
    # In a view: the GPUs of the servers its task measures, which others' waits do not reserve.
    own: set[str] = field(default_factory=set)

    def add(
        self, uuid: str, gb: float, exclusive: bool, task_id: str = "", server: bool = False
    ) -> None:
        self.leased_gb[uuid] = self.leased_gb.get(uuid, 0.0) + gb
        self.holders[uuid] = self.holders.get(uuid, 0) + 1
        if exclusive:
            self.exclusive.add(uuid)
        self.rows.append((task_id, uuid, gb, exclusive))
        if server:
            self.servers[task_id] = uuid

    def without(self, servers: Iterable[str]) -> GpuUsage:
        """This usage as a task that measures these servers sees it: their holds left out (it
        runs beside them, on purpose). Reservations stay shared with this usage."""
        mine = {s for s in servers if s in self.servers}
        if not mine:
            return self
        view = GpuUsage(reserved=self.reserved, own={self.servers[s] for s in mine})
        for task_id, uuid, gb, exclusive in self.rows:
            if task_id not in mine:
                view.add(uuid, gb, exclusive, task_id, task_id in self.servers)
        return view

    def free_gb(self, gpu: GpuInfo) -> float:
        return gpu.memory_total_gb - self.leased_gb.get(gpu.uuid, 0.0)

    def fits(self, gpu: GpuInfo, requires: Requires) -> bool:
        if gpu.uuid in self.exclusive or (gpu.uuid in self.reserved and gpu.uuid not in self.own):
            return False
        if requires.exclusive:
            return self.holders.get(gpu.uuid, 0) == 0
        return self.free_gb(gpu) + GB_EPSILON >= (requires.gpu_mem_gb or 0.0)


@functools.lru_cache(maxsize=4096)  # a claim asks once per row and GPU; names are few
def gpu_key(name: str) -> str:
    """One GPU product whatever its spelling: the canonical name from facts/aliases.toml (the one
    alias table, loaded once per process), lower-cased, spaces/underscores as '-', a leading
    'NVIDIA'/'GeForce' dropped. 'NVIDIA GB10' and 'DGX Spark' -> 'dgx-spark'; a name the table
    does not know keeps its own words ('NVIDIA H100 NVL' -> 'h100-nvl', not 'h100')."""
    canonical = re.sub(r"[\s_]+", "-", project().gpu_name(name).strip().lower())
    return re.sub(r"^(nvidia-)?(geforce-)?", "", canonical)


@functools.lru_cache(maxsize=1024)
def known_gpu(name: str) -> bool:
    """Does facts/hardware.toml (through facts/aliases.toml) know this GPU spelling?"""
    return project().known("gpu", name)


def gpu_matches(gpu: GpuInfo, requires: Requires) -> bool:
    """Is this GPU what the task requires (arch, product through the one alias table, memory)?"""
    if requires.arch and (gpu.arch or "").rstrip("af") != requires.arch.rstrip("af"):
        return False
    # Equal products, never substrings: 'H100' is neither 'H100 NVL' nor 'H1000'.
    if requires.gpu and gpu_key(requires.gpu) != gpu_key(gpu.name):
        return False
    return requires.gpu_mem_gb is None or gpu.memory_total_gb + GB_EPSILON >= requires.gpu_mem_gb


def _static_unmet(requires: Requires, caps: Capabilities) -> str | None:
    if requires.host and requires.host != caps.host:
        return f"host {requires.host}"
    missing = [tool for tool in requires.tools if tool not in caps.tools]
    if missing:
        return "tools: " + ", ".join(missing)
    if requires.needs_gpu and not any(gpu_matches(g, requires) for g in caps.gpus):
        return describe_gpu_need(requires)
    return None


def describe_gpu_need(requires: Requires) -> str:
    """'an sm_121 host', "an sm_120 'RTX Pro 6000' host with >= 90 GB", 'an exclusive GPU';
    a GPU name the alias table does not know says so, as adding it there is the usual fix."""
    words = [w for w in (requires.arch, f"'{requires.gpu}'" if requires.gpu else None) if w]
    noun = " ".join([*words, "host"]) if words else "GPU"
    if requires.exclusive and not words:
        noun = "exclusive GPU"
    article = "an" if noun[0] in "aeiou" or noun.startswith("sm_") else "a"
    text = f"{article} {noun}"
    if requires.gpu_mem_gb:
        text += f" with >= {requires.gpu_mem_gb:g} GB"
    if requires.gpu and not known_gpu(requires.gpu):
        text += " (a GPU name facts/aliases.toml does not know)"
    return text


def pick_gpu(requires: Requires, caps: Capabilities, usage: GpuUsage) -> GpuInfo | None:
    """The first matching GPU with room for the task's share, or None; a task measuring a
    server gets that server's GPU first."""
    ordered = sorted(caps.gpus, key=lambda g: g.uuid not in usage.own)
    for gpu in ordered:
        if gpu_matches(gpu, requires) and usage.fits(gpu, requires):
            return gpu
    return None


def unmet(requires: Requires, caps: Capabilities, usage: GpuUsage) -> str | None:
    """Why this agent cannot take the task now, as 'N tasks wait for <this>'; None when it can.

    A task that waits for a share of a busy GPU reserves the GPUs it could use (in `usage`),
    so the caller must ask in queue order.
    """
    static = _static_unmet(requires, caps)
    if static or not requires.needs_gpu:
        return static
    if pick_gpu(requires, caps, usage) is None:
        matching = {g.uuid for g in caps.gpus if gpu_matches(g, requires)}
        usage.reserved.update(matching)
        held = sorted(task for task, uuid in usage.servers.items() if uuid in matching)
        if held:  # say whose server, and what ends the hold
            return (
                f"the GPU held by the model server of {', '.join(held)} (until its benchmark "
                f"tears it down, or `swarm deploy --task {held[0]} --down`)"
            )
        return "a leased GPU to free up"
    return None


def summarize(reasons: Iterable[str]) -> str:
    """'41 tasks wait for an sm_121 host; 1 task waits for tools: nvcc', most common first."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(f"{n} task{' waits' if n == 1 else 's wait'} for {why}" for why, n in ordered)
