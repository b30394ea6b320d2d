"""The stages: one file each, declaring its `Stage` (declaration.py); registry.py lists them; the
record-stage lifecycle, the in-process runner, the ledger and the terminal display (the Ray runner
is ray_jobs/pipeline.py)."""
