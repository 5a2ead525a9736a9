"""Fitting a network: the recipes, the loss, the training loop and the ``train`` run around it (DDP, resume)."""
