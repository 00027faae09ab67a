"""Model wrappers: the YOLOv8 detector (full class-score rows) and the open_clip image embedder."""
