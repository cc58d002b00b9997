"""What the mixers are computed with: the scans (SSD for Mamba2, selective for Mamba) with their
hand-written backward, the blocked Mamba2 layer, the fused multi-direction passes, the causal conv,
length masking, Mamba2's gated norm, the dt initialisation, and the optional mamba-ssm CUDA kernels.
The mixer blocks themselves live one level up (see cald_asr/mixers/__init__.py for the file list).
Nothing here imports a model, and nothing imports mamba_ssm until its kernels are first used."""
