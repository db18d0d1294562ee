"""Entry point of a detached job: `python -m tools.run_job <job folder>`.

Runs the executor for the task's kind (tools/registry.py) and leaves result.json behind, even
when the executor raises: a job always ends with a result a worker can report.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from swarm.queue.jobs import JobResult, load_spec, write_result
from tools.executors import EXECUTORS


def main(folder: Path) -> int:
    spec = load_spec(folder)
    start = time.monotonic()
    print(f"job {spec.task_id} ({spec.kind}) starting", flush=True)
    try:
        executor = EXECUTORS[spec.kind]
        result = executor(spec)
    except Exception as exc:  # the failure is the job's result, with the traceback in log.txt
        traceback.print_exc()
        result = JobResult(status="failed", note=f"{type(exc).__name__}: {exc}"[:500])
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM unwound by the executor: what it
        # started was cleaned up on the way out; the result says it was stopped, not that it broke
        result = JobResult(status="failed", note=f"stopped by a signal ({exc or 'SIGINT'})")
    result = result.model_copy(update={"seconds": round(time.monotonic() - start, 2)})
    write_result(folder, result)
    print(f"job {spec.task_id} {result.status} in {result.seconds} s", flush=True)
    return 0 if result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
