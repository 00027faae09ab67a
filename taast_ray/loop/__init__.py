"""The active-learning loop above training and evaluation: cycles, the run layout, ingest."""
