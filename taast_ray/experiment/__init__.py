"""``taast experiment``: strategies × seeds × cycles, the statistics and the report."""
