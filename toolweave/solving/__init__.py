"""Solving: ToolAlpaca-style simulated dialogues (simulate); ToolBench-style solution search is
`toolweave.search` (DFSDT, CoT)."""
