"""Cross-Architecture Layerwise Distillation: the loss terms and the guiding strategies."""
