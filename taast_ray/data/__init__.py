"""Datasets: label files, synthetic data and the YOLO training layout."""
