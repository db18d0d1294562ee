#!/usr/bin/env bash
# The lab loop on a GPU host, with no network and no Docker: `swarm work` claims a deploy task for
# the tiny local Llama, serves it with `transformers serve` on the GPU (the `process` runtime of
# recipes/engines.toml), then claims the benchmark that depends on it, runs the standard sweep,
# records single/batched TPS as findings citing its run (engine version and the NVML inventory in
# the evidence) and tears the server down. Everything it prints and keeps goes under $OUT.
#
#   OUT=/some/dir scripts/gpu_loop_run.sh            # from the repository root
#
# Needs python3 with torch (CUDA) and transformers; swarm's small runtime needs and transformers'
# [serving] extras that are missing are installed from ./wheels (scripts/gpu_wheels.sh) into a
# throwaway folder put on PYTHONPATH (nothing of the host's Python changes). PYTHON=... picks
# another interpreter.
# A rehearsal without a GPU: REHEARSE_ARCH=sm_90 DEVICE=cpu (the GPU is then declared, not read);
# CONCURRENCY=1,2 REQUESTS=8 shorten the sweep (default: the lab's standard sweep, 64 a level).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/scripts/out/gpu_loop}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
PY=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/swarm-gpu-loop.XXXXXX)
echo "== $(date -u +%FT%TZ) on $(hostname); work dir $WORK; out $OUT"

echo "== python environment"
VPY=$(command -v "$PY")
mkdir -p "$WORK/bin" "$WORK/site"
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
missing=()
for pair in pydantic:pydantic numpy:numpy sqlite_utils:sqlite-utils tomli_w:tomli-w \
            tokenizers:tokenizers pynvml:nvidia-ml-py fastapi:fastapi uvicorn:uvicorn openai:openai; do
  mod=${pair%%:*} dist=${pair#*:}
  "$VPY" -c "import $mod" 2>/dev/null || missing+=("$dist")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}"
  [ -d "$REPO/wheels" ] || { echo "no ./wheels to install them from: run scripts/gpu_wheels.sh where pip reaches an index and carry wheels/"; exit 2; }
  if "$VPY" -m pip --version >/dev/null 2>&1; then
    "$VPY" -m pip install --quiet --no-index --find-links "$REPO/wheels" --target "$WORK/site" "${missing[@]}"
  else  # no pip here: unpack every wheel built for this interpreter (a wheel is a zip)
    "$VPY" - "$REPO/wheels" "$WORK/site" <<'PY'
import sys, zipfile
from pathlib import Path
tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    if "-py3-none-any" in wheel.name or "-py2.py3-none-any" in wheel.name or f"-{tag}-" in wheel.name:
        zipfile.ZipFile(wheel).extractall(sys.argv[2])
PY
  fi
fi
"$VPY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.version.cuda); print('transformers', transformers.__version__)"
# `transformers serve` from this interpreter, whatever its console scripts' location
cat > "$WORK/bin/transformers" <<WRAP
#!/usr/bin/env bash
exec "$VPY" -c 'import sys; from transformers.cli.transformers import main; sys.argv[0] = "transformers"; sys.exit(main())' "\$@"
WRAP
chmod +x "$WORK/bin/transformers"
export PATH="$WORK/bin:$PATH"
# fail here, in seconds, if `transformers serve` cannot even start (a missing serving extra)
transformers serve --help >/dev/null || { echo "transformers serve does not start here (see above)"; exit 4; }

echo "== GPU (NVML, as swarm reads it)"
nvidia-smi || true
(cd "$REPO" && "$VPY" -c "from tools.gpu import NvmlSource; print(NvmlSource().read().model_dump_json(indent=2))") | tee "$OUT/nvml_inventory.json"
ARCH=$("$VPY" -c "import json,sys; r=json.load(open('$OUT/nvml_inventory.json'))['readings']; print(r[0]['gpu']['arch'] if r else '')")
GPU_NAME=$("$VPY" -c "import json; r=json.load(open('$OUT/nvml_inventory.json'))['readings']; print(r[0]['gpu']['name'] if r else '')")
DEVICE=${DEVICE:-cuda:0}
DECLARE=()
if [ -z "$ARCH" ]; then
  [ -n "${REHEARSE_ARCH:-}" ] || { echo "NVML sees no GPU"; exit 3; }
  ARCH=$REHEARSE_ARCH GPU_NAME="rehearsal (no GPU)"
  DECLARE=(--gpu "rehearsal:$ARCH:1")
fi
echo "arch $ARCH ($GPU_NAME)"

echo "== the tiny Llama"
"$VPY" "$REPO/tests/fixtures/build_tiny_llama.py" "$WORK/tiny-llama"

SWEEP=${CONCURRENCY:+, \"concurrency\": [$CONCURRENCY]}

echo "== a lab: this tree without the catalog, its own database"
LAB="$WORK/lab"
mkdir -p "$LAB"
(cd "$REPO" && tar --exclude=./wheels --exclude=./scripts/out --exclude=./.git -cf - .) | (cd "$LAB" && tar xf -)
rm -f "$LAB"/tasks/*.toml
grep -q "arch = \"$ARCH\"" "$LAB/recipes/engines.toml" || printf '\n[[engine]]\nplatform = "transformers"\narch = "%s"\nruntime = "process"\n' "$ARCH" >> "$LAB/recipes/engines.toml"
if command -v git >/dev/null 2>&1; then
  (cd "$LAB" && git init -q && git -c user.email=gpu@lab -c user.name=gpu add -A && git -c user.email=gpu@lab -c user.name=gpu commit -qm "gpu loop lab")
else
  mkdir -p "$LAB/.git"  # swarm finds its work tree by the .git beside it
fi
# transformers serve lists its models by scanning the Hugging Face cache, and answers 500 on
# /v1/models when that folder does not exist (a fresh GPU host): give it an empty one.
export HF_HUB_CACHE="$WORK/hf-cache"; mkdir -p "$HF_HUB_CACHE"
export SWARM_DB="$WORK/lab.db" SWARM_LAB_DIR="$WORK" HF_HUB_OFFLINE=1 NO_PROXY='*' PYTHONUNBUFFERED=1
swarm() { (cd "$LAB" && "$VPY" -m swarm.cli "$@"); }
DEPLOY=$(swarm add deploy "serve the tiny Llama on $GPU_NAME" --arch "$ARCH" --json --spec "{\"gpu\": \"$GPU_NAME\", \"model\": \"tiny-llama\", \"platform\": \"transformers\", \"hf_repo\": \"$WORK/tiny-llama\", \"deploy\": {\"engine_args\": [\"--device\", \"$DEVICE\"], \"ready_timeout_s\": 300.0}}" | "$VPY" -c "import json,sys; print(json.load(sys.stdin)['id'])")
BENCH=$(swarm add benchmark "benchmark the tiny Llama on $GPU_NAME" --arch "$ARCH" --exclusive --depends-on "$DEPLOY" --json --spec "{\"gpu\": \"$GPU_NAME\", \"model\": \"tiny-llama\", \"platform\": \"transformers\", \"deploy_task\": \"$DEPLOY\", \"server_kind\": \"transformers\", \"output_len\": 32, \"requests\": ${REQUESTS:-64}, \"warmup\": 2$SWEEP}" | "$VPY" -c "import json,sys; print(json.load(sys.stdin)['id'])")
echo "deploy task $DEPLOY, benchmark task $BENCH"
swarm deploy --task "$DEPLOY" --dry-run | tee "$OUT/plan.json"

echo "== swarm work (deploy, then benchmark), GPU sampled every second"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 > "$OUT/gpu_samples.csv" 2>/dev/null &
SAMPLER=$!
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv -l 2 > "$OUT/gpu_processes.csv" 2>/dev/null &
APPS=$!
trap 'kill $SAMPLER $APPS 2>/dev/null || true' EXIT
set +e
swarm work --until-idle --no-maintenance --kind deploy --kind benchmark "${DECLARE[@]}" --json > "$OUT/work_summary.json"
RC=$?
set -e
kill $SAMPLER $APPS 2>/dev/null || true

echo "== what the loop recorded"
swarm show "$DEPLOY" --json > "$OUT/deploy_task.json"
swarm show "$BENCH" --json > "$OUT/benchmark_task.json"
swarm finding ls --json > "$OUT/findings.json"
cp -r "$WORK/jobs" "$OUT/jobs"
"$VPY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
bench = json.loads((out / "benchmark_task.json").read_text())
payload = bench["results"][-1]["payload"] if bench.get("results") else {}
report = payload.get("report")
if report:
    (out / "report.json").write_text(json.dumps(report, indent=2))
    sys.path.insert(0, ".")
    from tools.benchmark import BenchmarkReport
    from tools.bench_plot import write_sweep_png
    try:
        write_sweep_png(BenchmarkReport.model_validate(report), out / "sweep.png")
    except ImportError as exc:
        print("no plot:", exc)
    print(f"{'load':>8} {'ok':>4} {'fail':>4} {'valid':>5} {'out tok/s':>10} {'TTFT p50 ms':>11} {'TPOT p50 ms':>11}")
    for lv in report["levels"]:
        m = lv["metrics"]
        print(f"{lv['load']:>8} {lv['completed']:>4} {lv['failed']:>4} {str(lv['valid']):>5} {lv['output_throughput']:>10.1f} "
              f"{m.get('median_ttft_ms', 0):>11.1f} {m.get('median_tpot_ms', 0):>11.2f}")
    s = report["summary"]
    print("single TPS", s.get("single_tps"), "batched", s.get("batched_tps"), "knee", (s.get("knee") or {}).get("concurrency"))
print("engine version:", payload.get("engine_version"), "| torn down:", payload.get("torn_down"))
findings = json.loads((out / "findings.json").read_text())
for f in findings if isinstance(findings, list) else findings.get("findings", []):
    print("finding:", f.get("predicate"), f.get("value"), f.get("unit"), f.get("attributes"))
PY
echo "== swarm work exited $RC; outputs in $OUT"
exit $RC
