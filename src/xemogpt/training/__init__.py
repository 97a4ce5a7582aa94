"""Training: running recipes stage by stage, checkpoints, fault tolerance."""
