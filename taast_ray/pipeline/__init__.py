"""The Ray adapter of one selection pass: the live pool through model actors to the central aggregator."""
