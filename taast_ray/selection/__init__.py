"""Selection: scoring, candidates, k-means / core-set and the strategies (SPEC.md §2)."""
