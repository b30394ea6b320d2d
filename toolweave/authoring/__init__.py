"""Making tools and tasks: tools from catalogue entries (build_toolset), instructions over them
(ToolAlpaca and ToolBench styles), near-duplicate filtering by MinHash (near_dup)."""
