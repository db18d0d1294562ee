#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels scripts/gpu_loop_run.sh may need on an
# offline GPU host whose Python has torch and transformers but perhaps not swarm's small runtime
# dependencies or transformers' [serving] extras. Writes ./wheels/ (git-ignored; carry it along).
# Binary wheels are fetched for CPython 3.10-3.13 on x86_64 manylinux, so the host's version is
# covered without knowing it in advance.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=wheels
mkdir -p "$OUT"
# swarm's runtime needs on that path (imported lazily elsewhere), then transformers serve's extras
PKGS=(pydantic sqlite-utils tomli-w nvidia-ml-py fastapi uvicorn "openai>=1.98")
for v in 3.10 3.11 3.12 3.13; do
  python3 -m pip download --quiet --dest "$OUT" --only-binary=:all: \
    --python-version "$v" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --implementation cp "${PKGS[@]}"
done
du -sh "$OUT"
ls "$OUT" | wc -l
