#!/usr/bin/env bash
# The GPU check, one script: on a machine with a CUDA GPU,
#   1. the run's own Serve LLM app deploys a replica of the shipped SmolLM2 on CUDA and a small DFSDT
#      solve runs against it (configs/gpu_check.yaml: build_toolset -> instructions -> solve);
#   2. ZeRO-3 trains a 1.1B Llama built from a config (random weights: no hub download) at 8192 tokens
#      on every GPU, printing tokens/s and MFU (tests/training/test_gpu.py);
#   3. the proof of value at its GPU profile (benchmarks/proof_of_value.py --profile gpu: 10x the CPU
#      profile's queries and training steps): base vs trained SmolLM2 on held-out tools, one table.
# Without a GPU it prints "skipped: no GPU" and exits 0. `--dry-run` checks the config loads and prints
# the commands without running them (any machine).
#   bash scripts/gpu_check.sh [--dry-run]         (PYTHON=... picks the interpreter; default python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RUN_DIR=${GPU_CHECK_RUN_DIR:-$(mktemp -d /tmp/gpu_check.XXXXXX)}

SOLVE=("$PY" -m ray_jobs.cli run configs/gpu_check.yaml "run_dir=$RUN_DIR/solve")
TRAIN=("$PY" -m pytest -q -s -p no:cacheprovider tests/training/test_gpu.py)
PROOF=("$PY" benchmarks/proof_of_value.py --profile gpu "run_dir=$RUN_DIR/proof_of_value")

if [[ $DRY == 1 ]]; then
    "$PY" -c "from toolweave.config import load_config; c = load_config('configs/gpu_check.yaml'); \
print('config ok:', c.name, c.stages, 'gpus per replica:', c.llm.deployments[0].gpus_per_worker)"
    echo "would run: ${SOLVE[*]}"
    echo "would run: ${TRAIN[*]}"
    echo "would run: ${PROOF[*]}"
    exit 0
fi

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "skipped: no GPU (torch.cuda.is_available() is false)"
    exit 0
fi
"$PY" -c "import torch; print('GPUs:', [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"

echo "== 1. Serve LLM replica on CUDA + a small DFSDT solve (run dir $RUN_DIR/solve)"
t0=$(date +%s)
"${SOLVE[@]}"
"$PY" - "$RUN_DIR/solve" <<'PY'
import json, sys
from pathlib import Path
s = json.loads((Path(sys.argv[1]) / "solve_summary.json").read_text())
print("solve:", {k: s.get(k) for k in ("processed", "failed", "llm_calls", "prompt_tokens", "completion_tokens", "tokens_per_s")})
assert s.get("processed", 0) > 0, "the solve produced no episodes"
PY
echo "solve chain took $(( $(date +%s) - t0 )) s"

echo "== 2. ZeRO-3, 1.1B Llama (random weights) at 8192 tokens: tokens/s and MFU"
"${TRAIN[@]}"

echo "== 3. proof of value, GPU profile (run dir $RUN_DIR/proof_of_value)"
t0=$(date +%s)
"${PROOF[@]}"
echo "proof of value took $(( $(date +%s) - t0 )) s"
echo "gpu check: done"
