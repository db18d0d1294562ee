#!/usr/bin/env python3
"""Latency of the attribution hooks, measured in a throwaway git repo.

    python scripts/bench_hooks.py [--commits 20] [--json]

Times, in the same run: `git commit` with no hooks (the floor), `git commit` with the four hooks
installed (what an agent pays per commit), and the commit-msg hook alone (`python3 -m
swarm.lab.hooks commit-msg FILE`, what the target of 150 ms is about), next to `python3 -c pass`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = "dev@primitivecontext.com"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as tmp:
        repo, home = Path(tmp) / "lab", Path(tmp) / "home"
        repo.mkdir()
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            HOME=str(home),
            GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
            GIT_CONFIG_NOSYSTEM="1",
            PYTHONPATH=str(REPO),
        )
        git = ["git", "-c", "user.name=Lab Dev", "-c", f"user.email={LAB}"]
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
        (repo / "pyproject.toml").write_text(
            f'[tool.swarm.attribution]\nidentities = [{{ email = "{LAB}" }}]\n'
        )
        shutil.copytree(REPO / ".githooks", repo / ".githooks")
        (repo / "msg.txt").write_text(
            "Add the deploy spec\n\nTask: deploy-1a2b3c is not a trailer pair here\n"
        )
        rows: dict[str, list[float]] = {
            "git commit, no hooks": [],
            "git commit, hooks installed": [],
            "commit-msg hook alone": [],
            "python3 -c pass": [],
        }
        for i in range(args.commits):
            for hooks, label in (
                (False, "git commit, no hooks"),
                (True, "git commit, hooks installed"),
            ):
                (repo / "f.txt").write_text(f"{i} {hooks}\n")
                subprocess.run([*git, "add", "f.txt"], cwd=repo, check=True, env=env)
                path = (
                    ["-c", "core.hooksPath=.githooks"]
                    if hooks
                    else ["-c", "core.hooksPath=/dev/null"]
                )
                rows[label].append(
                    timed([*git, *path, "commit", "-q", "-m", f"change {i}"], repo, env)
                )
            rows["commit-msg hook alone"].append(
                timed(
                    [
                        *git[:1],
                        *git[1:],
                        "-c",
                        "core.hooksPath=.githooks",
                        "hook",
                        "run",
                        "commit-msg",
                        "--",
                        "msg.txt",
                    ],
                    repo,
                    env,
                )
            )
            rows["python3 -c pass"].append(timed([sys.executable, "-c", "pass"], repo, env))
    report = {
        name: {"p50_ms": round(statistics.median(v) * 1000, 1), "max_ms": round(max(v) * 1000, 1)}
        for name, v in rows.items()
    }
    added = (
        report["git commit, hooks installed"]["p50_ms"] - report["git commit, no hooks"]["p50_ms"]
    )
    summary = {
        "schema_version": 1,
        "commits": args.commits,
        "timings": report,
        "hooks_add_per_commit_ms": round(added, 1),
        "target_commit_msg_ms": 150,
        "environment": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print("what | p50 ms | max ms")
    print("--- | --- | ---")
    for name, t in report.items():
        print(f"{name} | {t['p50_ms']} | {t['max_ms']}")
    print(f"\nthe four hooks add {added:.1f} ms per commit (p50); target for commit-msg: <= 150 ms")
    print(f"environment: {summary['environment']}")


if __name__ == "__main__":
    main()
