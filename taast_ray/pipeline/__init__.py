"""Ray orchestration: the live selection pass and its central aggregator."""
