"""Training: configs, optimiser and schedule, SpecAugment, checkpoints, distributed helpers, the loop."""
