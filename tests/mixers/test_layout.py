"""The package's layout: one file per mixer, named as its registry entry, and no model behind it."""

import subprocess
import sys

from cald_asr.mixers import MIXERS


def test_each_mixer_lives_in_the_file_of_its_name():
    assert {name: cls.__module__ for name, cls in MIXERS.items()} == {
        name: f"cald_asr.mixers.{name}" for name in MIXERS
    }


def test_importing_the_mixers_loads_no_model():
    # a fresh interpreter: this process has the models, train, distill and data packages loaded already
    code = (
        "import sys, cald_asr.mixers; print(' '.join(sorted(m for m in sys.modules if m.startswith('cald_asr.')"
        " and not m.startswith('cald_asr.mixers'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(loaded) <= {"cald_asr.registry", "cald_asr.precision"}, "only the base layer (docs/architecture.md)"
