"""Fine-tuning the detector with Ray Train (DDP in a process group owned by Ray Train)."""
