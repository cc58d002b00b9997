"""One training run per experiment dir: a lock file `<exp>/.lock` naming its holder (host, pid, start time).

Two runs in one dir would tear each other's checkpoints and model dirs, so a second run fails at once and
names the holder. The lock is a plain file created with O_EXCL (it works on NFS, where recipes' exp dirs
often live, unlike flock between hosts). A lock left by a process that died on this host (its pid is gone)
is taken over with a warning; a lock from another host cannot be checked from here, so it is reported, not
broken: remove the file by hand once that run is known to be dead.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, Optional

LOCK_NAME = ".lock"


class RunLockError(RuntimeError):
    """The experiment dir is in use (or its lock cannot be judged); the message names the holder and file."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read(path: Path) -> Optional[Dict[str, Any]]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: Dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (since {since})"


class RunLock:
    """`with RunLock(exp_dir, log=print): ...` holds the lock for the block."""

    def __init__(self, directory: os.PathLike | str, log=print):
        self.path = Path(directory) / LOCK_NAME
        self.log = log
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        self.held = False

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._judge_existing()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.me, f)
            self.held = True
            return self
        raise RunLockError(f"{self.path}: could not take the lock (other runs keep taking it)")

    def _judge_existing(self) -> None:
        holder = _read(self.path)
        if holder is None:  # released meanwhile: try again
            return
        if not holder or "pid" not in holder or "host" not in holder:
            raise RunLockError(f"{self.path}: unreadable lock file; if no run uses this dir, remove it")
        if holder["host"] != self.me["host"]:
            raise RunLockError(
                f"{self.path.parent} is locked by {_describe(holder)}, another host: this host cannot "
                f"tell whether that run is alive. If it is not, remove {self.path}"
            )
        if _alive(int(holder["pid"])):
            raise RunLockError(
                f"{self.path.parent} is in use by {_describe(holder)}: one run per experiment dir "
                f"(lock file {self.path})"
            )
        # the holder died without releasing: move its lock aside, then check that what moved was that lock
        stale = self.path.with_name(f"{LOCK_NAME}.stale{os.getpid()}")
        try:
            os.replace(self.path, stale)
        except FileNotFoundError:
            return
        moved = _read(stale)
        if moved != holder:  # another run took the stale lock over first: put its live lock back
            try:
                os.link(stale, self.path)
            except FileExistsError:
                pass
            stale.unlink(missing_ok=True)
            raise RunLockError(f"{self.path.parent} is in use by {_describe(moved or {})} (lock file {self.path})")
        stale.unlink(missing_ok=True)
        self.log(f"taking over the lock of {_describe(holder)}, which is no longer running ({self.path})")

    def release(self) -> None:
        if self.held and _read(self.path) == self.me:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
