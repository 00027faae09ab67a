"""Evaluation: AP, AP_r/AP_c/AP_f (LVIS API) and mAP@[.5:.95] (COCO API) of detection results."""
