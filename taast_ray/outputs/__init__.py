"""What a selection publishes (SPEC.md §3): the output set's files, ``report.html`` and the
degenerate-selection warnings of its summary."""
