"""The layering of docs/architecture.md, checked on every import in cald_asr/ (those inside functions
too): data and mixers know no model, library code never imports bin/, and no part imports one above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cald_asr"
BASE = {"registry", "precision"}
# part -> the parts it may import (docs/architecture.md); a part may always import itself
ALLOWED = {
    "registry": set(),
    "precision": set(),
    "text": BASE,
    "data": BASE | {"text"},
    "frontend": BASE,
    "mixers": BASE,
    "models": BASE | {"frontend", "mixers", "text", "data", "convert"},
    "convert": BASE | {"models", "mixers"},
    "decode": BASE | {"models", "data", "text"},
    "scoring": BASE | {"data", "text"},
    "distill": BASE | {"models", "data"},
    "tasks": BASE | {"distill", "decode", "scoring", "models", "frontend", "data", "text"},
    "train": BASE
    | {"tasks", "distill", "decode", "scoring", "models", "convert", "mixers", "frontend", "data", "text"},
    "inference": BASE | {"decode", "models", "frontend", "data", "text"},
    "corpora": BASE | {"data", "text"},
    "report": BASE | {"scoring", "models", "convert", "data", "text"},
}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path, package: Path = PACKAGE):
    """(line, imported cald_asr module) for every import in the file, relative ones resolved."""
    module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package[: -len(".__init__")] if package.endswith(".__init__") else package
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield node.lineno, ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.lineno, node.module or ""


def violations(package: Path):
    broken = []
    for path in sorted(package.rglob("*.py")):
        me = part_of(".".join(path.relative_to(package.parent).with_suffix("").parts))
        if me in ("", "__init__", "bin"):
            continue
        if me not in ALLOWED:
            broken.append(f"{path}: part {me!r} is not in docs/architecture.md's table")
            continue
        for line, target in imports(path, package):
            if target.startswith("cald_asr.") and part_of(target) != me and part_of(target) not in ALLOWED[me]:
                broken.append(f"{path.relative_to(package.parent)}:{line}: {me} imports {target}")
    return broken


def test_every_import_follows_the_layering():
    assert len(list(PACKAGE.rglob("*.py"))) > 50
    broken = violations(PACKAGE)
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def test_the_check_sees_relative_late_and_bin_imports(tmp_path):
    """A data module importing a model (relatively, inside a function) or a mixer importing bin/ is caught."""
    (tmp_path / "cald_asr" / "data").mkdir(parents=True)
    (tmp_path / "cald_asr" / "mixers").mkdir()
    (tmp_path / "cald_asr" / "data" / "x.py").write_text("def f():\n    from ..models import model_file\n")
    (tmp_path / "cald_asr" / "mixers" / "y.py").write_text("import cald_asr.bin.score\n")
    assert violations(tmp_path / "cald_asr") == [
        "cald_asr/data/x.py:2: data imports cald_asr.models",
        "cald_asr/mixers/y.py:1: mixers imports cald_asr.bin.score",
    ]
