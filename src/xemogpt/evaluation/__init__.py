"""Evaluation: generation on a split, metrics, baselines and reports."""
