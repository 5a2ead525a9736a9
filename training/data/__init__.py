"""Landslide4Sense patches: finding them, splitting them without leaks, reading, augmenting, band statistics."""
