"""Entry point of ``python -m training`` (and ``torchrun ... -m training``)."""

from training.cli import main

raise SystemExit(main())
