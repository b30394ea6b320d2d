"""Stage build_toolset: catalogue/ -> toolsets/: toolweave.build_toolset.build_tool per catalogue entry
(toolweave.stages.workers.BuildToolsetWorker), plus `toolsets.sources` imports.

    python -m ray_jobs.build_toolset --config configs/quickstart.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.build_toolset --config configs/quickstart.yaml
"""
import sys

from ray_jobs.launch import main

if __name__ == "__main__":  # the engine and Ray Data spawn processes: keep the guard
    sys.exit(main("build_toolset"))
