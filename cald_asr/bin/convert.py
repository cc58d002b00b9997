"""Convert a saved transformer model to a linear-time one: every attention becomes the named mixer,
every other tensor is copied unchanged; prints which modules were replaced and the parameter counts.

    python -m cald_asr.bin.convert --model_dir exp/teacher --mixer bimamba2 \
        --mixer_conf '{d_state: 128}' --output_dir exp/student_init
    python -m cald_asr.bin.convert --model_dir exp/teacher --config conf/mixer/linformer.yaml ...

A mixer config file holds `mixer:` and `mixer_conf:`; --mixer / --mixer_conf override it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import yaml

from cald_asr.convert import convert_model
from cald_asr.models.model_file import ModelFileError, load_model, read_config, save_model


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="directory with config.yaml + model.safetensors")
    p.add_argument("--config", default=None, help="YAML with mixer: and mixer_conf:")
    p.add_argument("--mixer", default=None, help="bimamba2, bimamba, mamba2, mamba or linformer")
    p.add_argument("--mixer_conf", default=None, help="YAML/JSON mapping of mixer options")
    p.add_argument("--output_dir", required=True)
    args = p.parse_args(argv)
    try:
        conf = read_config(args.config) if args.config else {}
        mixer = args.mixer or conf.get("mixer")
        mixer_conf = yaml.safe_load(args.mixer_conf) if args.mixer_conf else conf.get("mixer_conf") or {}
        if not mixer:
            raise ModelFileError("no mixer given (--mixer or mixer: in --config)")
        if not isinstance(mixer_conf, dict):
            raise ModelFileError(f"--mixer_conf must be a mapping, got {args.mixer_conf!r}")
        model, config = load_model(args.model_dir)
        if config.get("mixer"):
            raise ModelFileError(f"{args.model_dir} is already converted (mixer: {config['mixer']})")
        report = convert_model(model, mixer, mixer_conf)
        save_model(
            model,
            {**config, "mixer": mixer, "mixer_conf": mixer_conf, "converted_from": str(args.model_dir)},
            args.output_dir,
        )
    except (ModelFileError, ValueError, yaml.YAMLError) as e:
        print(f"convert: error: {e}", file=sys.stderr)
        return 1
    print(report)
    print(f"convert: wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
