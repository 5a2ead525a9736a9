"""Model packages out of training: a run's outputs, checkpoint export, the built-in model, the Seed's weights."""
