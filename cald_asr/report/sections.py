"""What every RESULTS.md shares: the environment header it begins with, the name a model goes by, the table
of each model's scores per test set, and the commands it ends with."""

from __future__ import annotations

import datetime
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from cald_asr.report.machine import describe_machine


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit(cwd: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_name(model_dir: Path) -> str:
    return f"{model_dir.parent.name}/{model_dir.name}"


def env_header(recipe_dir: Path) -> List[str]:
    return [
        f"# RESULTS: {recipe_dir.resolve().parent.name}/{recipe_dir.resolve().name}",
        "",
        "## Environment",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- python {platform.python_version()}, torch {_version('torch')}, transformers "
        f"{_version('transformers')}, espnet {_version('espnet')}, cald-asr {_version('cald-asr')}",
        f"- git commit: {_git_commit(recipe_dir)}",
        f"- machine: {describe_machine()}",
        "",
    ]


def per_model_tables(
    models: Sequence[Path],
    scores: Dict[str, Dict],
    test_sets: Sequence[str],
    head: str,
    align: str,
    row: Callable[[str, Dict], str],
) -> List[str]:
    """A `### <model>` table per model: `head`, `align`, then row(set, its scores) for each set it has."""
    lines: List[str] = []
    for m in models:
        lines += [f"### {model_name(m)}", "", head, align]
        for s in test_sets:
            r = scores[str(m)].get(s)
            if r:
                lines.append(row(s, r))
        lines.append("")
    return lines


def commands_section(commands: Sequence[str]) -> List[str]:
    return ["## Commands", "", "```bash", *commands, "```", ""]
