"""Scores: the metric protocols, predicting and scoring a split, scoring a package, and the run's plots."""
