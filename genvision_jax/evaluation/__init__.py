"""Evaluation: feature extractors, sample-quality metrics and significance tests."""
