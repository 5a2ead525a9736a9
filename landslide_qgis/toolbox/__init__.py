"""Processing provider and algorithms (one module per algorithm)."""
