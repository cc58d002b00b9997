"""cald-asr: convert pretrained transformers to linear-time models with Cross-Architecture Layerwise Distillation."""

__version__ = "0.1.0"
