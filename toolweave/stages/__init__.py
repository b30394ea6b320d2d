"""Ray-free glue of each stage: what it reads, writes and calls (the Ray side is actors/, ray_jobs/)."""
