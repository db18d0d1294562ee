#!/usr/bin/env bash
# One call on a GPU machine (the device tool runs it from the repository root, with $OUT):
#   1. clocks and toolchain;
#   2. the probe (kernels/probe/nvfp4_probe.cu) in two builds: per-target defaults with every
#      v0/v1 variant (run twice: the spread), and the software FP8 path (NVFP4_HW_FP8=0, what
#      SM120 runs);
#   3. Nsight Compute on each full kernel, old and new (where the profiler reads the counters);
#   4. scripts/bench_kernels.py: checks, timing, size sweep, FP8 probe, results files.
# Python packages the machine lacks travel as wheels in .whl/ (the device README's recipe).
set -u
OUT=${OUT:-/tmp/nvfp4_out}
mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu \
    --format=csv
  nvcc --version | tail -2
  uname -r
} >"$OUT/env.txt" 2>&1

flags=(-O3 -std=c++17 -lineinfo -Xptxas -warn-spills,-warn-lmem-usage -gencode arch=compute_90a,code=sm_90a)
nvcc "${flags[@]}" kernels/probe/nvfp4_probe.cu -o /tmp/probe &
nvcc "${flags[@]}" -DNVFP4_HW_FP8=0 -DPROBE_BUILD='"software FP8"' kernels/probe/nvfp4_probe.cu -o /tmp/probe_sw &
wait

{
  /tmp/probe 28 50
  /tmp/probe_sw 28 50 v1only
  /tmp/probe 28 50 v1only # the same build again: the spread between two identical runs
} >"$OUT/probe.txt" 2>&1

sections=(--section SpeedOfLight --section LaunchStats --section Occupancy --section ComputeWorkloadAnalysis
  --section WarpStateStats --section InstructionStats --section MemoryWorkloadAnalysis)
timeout 240 ncu --clock-control none "${sections[@]}" -k 'regex:quantize|dequantize' /tmp/probe ncu 26 \
  >"$OUT/ncu.txt" 2>&1
metrics=sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
metrics+=,sm__inst_executed_pipe_fmaheavy.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
metrics+=,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active
metrics+=,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum
timeout 120 ncu --clock-control none --metrics "$metrics" -k 'regex:quantize|dequantize' /tmp/probe ncu 26 \
  >>"$OUT/ncu.txt" 2>&1

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site
fi
python3 scripts/bench_kernels.py --out-dir "$OUT" >"$OUT/bench.log" 2>&1
tail -n 40 "$OUT/bench.log"
grep -E "^(v[01] |memory|copy|NVIDIA)" "$OUT/probe.txt"
