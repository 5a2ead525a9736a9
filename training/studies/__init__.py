"""Studies over many models or recipes: the paper's model table (zoo), the small-data cross-validation behind
the built-in model with its gradient-boosting baseline, and training throughput."""
