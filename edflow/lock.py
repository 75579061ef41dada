"""One writer per run folder: the process that trains, resumes or evaluates into a run holds ``<run>/edflow.lock``
(its pid and host). A second process exits naming the holder; a lock whose process is gone (same host) is taken
over with a warning. Under torchrun rank 0 takes the lock for all ranks.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time

from edflow import distributed as dist
from edflow.config import ConfigError

LOCK_NAME = "edflow.lock"


class RunLockedError(ConfigError):
    """Another live process writes to this run folder."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def read_holder(path: str) -> dict | None:
    """The lock's record; {} for a lock being written this instant (or cut short), None for no lock."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {}


def holder_text(holder: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["time"])) if holder.get("time") else "?"
    return (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} (since {since}: "
            f"{holder.get('command', '?')})")


class RunLock:
    def __init__(self, root: str):
        self.root = root
        self.path = os.path.join(root, LOCK_NAME)
        self.held = False

    def acquire(self) -> "RunLock":
        """Take the lock (rank 0), or raise RunLockedError on every rank."""
        problem = None
        if dist.is_main_process():
            try:
                self._acquire()
            except RunLockedError as error:
                problem = str(error)
        problem = dist.broadcast_object(problem)
        if problem:
            raise RunLockedError(problem)
        return self

    def _acquire(self) -> None:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                  "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))}
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_holder(self.path)
                if holder is None:
                    continue  # released in between: try again
                if not holder:
                    time.sleep(0.02)  # its writer is filling it in
                    continue
                if holder.get("host") == record["host"] and not pid_alive(holder.get("pid", -1)):
                    self._take_over(holder)
                    continue
                raise RunLockedError(
                    f"run folder {self.root} is in use by {holder_text(holder)}; one process writes to a run at a "
                    f"time: wait for it to end or stop it (kill {holder.get('pid')}). A lock left by a crashed "
                    f"process on another host can be removed by hand: rm {self.path}") from None
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}: it changed hands too often; try again")

    def _take_over(self, holder: dict) -> None:
        # rename first: of two processes that both found the stale lock, only one can move it away
        stale = f"{self.path}.stale-{os.getpid()}"
        try:
            os.replace(self.path, stale)
        except FileNotFoundError:
            return
        moved = read_holder(stale) or {}
        if moved.get("pid") != holder.get("pid"):  # a live process took it over in between: give it back
            try:
                os.link(stale, self.path)  # unless yet another process holds it by now
            except FileExistsError:
                pass
            os.remove(stale)
            return
        os.remove(stale)
        print(f"edflow: warning: run folder {self.root} was locked by {holder_text(holder)}, which is gone; "
              f"the lock is taken over", file=sys.stderr)

    def release(self) -> None:
        if not self.held:
            return
        holder = read_holder(self.path)
        if holder and holder.get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
