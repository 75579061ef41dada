"""``console.log`` in the run folder: what a run printed (stdout and stderr, warnings and errors included), copied
there while it still reaches the terminal.

- Lines printed before the run folder exists (the preflight's) are held and written once it does.
- Each start appends a session line, so a resumed run's file tells its sessions apart.
- Only completed lines are written, once the cursor has left them for good: a progress bar redrawn with carriage
  returns leaves its last state only, and bars that clear themselves leave nothing.
- Under torchrun only rank 0 writes; other ranks print to their terminal as before.
- A failed write (a full disk, a lost mount) prints one warning and stops copying; the run goes on.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
import time
import traceback

from edflow import safe_io

FILE_NAME = "console.log"
MAX_HELD_LINES = 10000  # lines kept until the run folder exists; a preflight prints a few dozen

_active: "ConsoleLog | None" = None


class _Screen:
    """The rows a terminal would show for one stream, so that what progress bars draw and redraw (carriage
    returns; nested bars move the cursor down with newlines and back up with ESC [ A) ends as the bars' last
    state, and bars that cleared themselves leave nothing."""

    def __init__(self):
        self.rows = [""]
        self.written = [False]  # a row written to that ends blank is a cleared bar, not an empty print()
        self.bar = [False]  # a row redrawn with carriage returns
        self.message_from: list[int | None] = [None]  # where a message printed onto a bar's row starts
        self.row = self.col = 0
        self.moves = 0  # newlines that may be a bar moving the cursor down, to come back up with ESC [ A
        self.after_message = False

    def feed(self, text: str, *, drawing: bool = False) -> None:
        """``drawing``: written inside one of tqdm's drawing operations. There a write of newlines alone that
        does not end a message (tqdm.write's) moves the cursor to a lower bar, and back up before it ends."""
        tokens = _TOKENS.findall(text)
        if not drawing:
            self.moves = 0
        elif tokens and not text.strip("\n") and not self.after_message:
            self.moves = min(BAR_ROWS, self.moves + len(text))
        self.after_message = bool(tokens) and tokens[0][0] not in "\r\n\x1b"
        if tokens and tokens[0][0] not in "\r\n\x1b" and self.bar[self.row]:
            # a print (not tqdm.write) while a bar is drawn: on a terminal it shares the bar's row; here it gets
            # the row to itself, and the bar's state at that moment is dropped (its last state comes later)
            self.rows[self.row] = self.rows[self.row][:self.col]
            self.message_from[self.row] = self.col
        for token in tokens:
            if token == "\n":  # a terminal starts the next row at its first column
                self.row, self.col = self.row + 1, 0
                if self.row == len(self.rows):
                    self.rows.append("")
                    self.written.append(False)
                    self.bar.append(False)
                    self.message_from.append(None)
            elif token == "\r":
                self.col = 0
                self.bar[self.row] = True
                self.message_from[self.row] = None
            elif token.startswith("\x1b"):
                up = _UP.fullmatch(token)
                if up:
                    self.row = max(0, self.row - int(up.group(1) or 1))
                    self.moves = max(0, self.moves - int(up.group(1) or 1))
            else:  # overwrites what is under the cursor, as a terminal does
                line = self.rows[self.row].ljust(self.col)
                self.rows[self.row] = line[:self.col] + token + line[self.col + len(token):]
                self.written[self.row] = True
                self.col += len(token)

    def take(self, keep: int) -> list[str]:
        """The rows more than ``keep`` rows above the cursor (the cursor can no longer come back to them)."""
        n = max(0, self.row - keep)
        lines = [self._text(i) for i in range(n) if self.rows[i].strip() or not self.written[i]]
        del self.rows[:n], self.written[:n], self.bar[:n], self.message_from[:n]
        self.row -= n
        return lines

    def _text(self, i: int) -> str:
        return self.rows[i][self.message_from[i] or 0:].rstrip()

    def take_all(self) -> list[str]:
        lines = self.take(0)
        rest = self._text(0)
        self.rows, self.written, self.bar, self.message_from, self.row, self.col = [""], [False], [False], [None], 0, 0
        return lines + ([rest] if rest else [])


_TOKENS = re.compile(r"\n|\r|\x1b\[[0-9;?]*[A-Za-z]|\x1b|[^\n\r\x1b]+")
_UP = re.compile(r"\x1b\[(\d*)A")
BAR_ROWS = 4  # rows kept back at most while tqdm draws (nested bars move the cursor down and back up)


def _tqdm_drawing() -> bool:
    """Whether this thread is inside one of tqdm's drawing operations (it holds tqdm's lock for each), in which
    the cursor may stand below a bar it comes back to; between them every row above the cursor is final."""
    try:
        from tqdm.std import TqdmDefaultWriteLock

        return TqdmDefaultWriteLock.th_lock._is_owned()  # one thread lock shared by every bar class's lock
    except Exception:  # tqdm's lock is not public API: when it changes, assume a bar is being drawn
        return True


class ConsoleLog:
    """Completed lines of the streams fed to it, appended to ``path`` once ``attach`` has named it."""

    def __init__(self):
        self.path: str | None = None
        self.enabled = True  # False on ranks other than 0 and after a failed write
        self.warnings_to = None  # where the one warning about a failed write goes: the terminal's stderr
        self._held: list[str] = []
        self._screens: dict[str, _Screen] = {}
        self._lock = threading.RLock()

    def attach(self, root: str, *, header: str, main_process: bool = True) -> None:
        """Write from now on to ``<root>/console.log``: the session line, then the lines held so far."""
        with self._lock:
            if not main_process:
                self.enabled, self._held = False, []
                return
            if not self.enabled or self.path is not None:
                return
            self.path = os.path.join(root, FILE_NAME)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            held, self._held = self._held, []
            self._append([f"===== session {stamp} on {socket.gethostname()} (pid {os.getpid()}): {header} ====="]
                         + held)

    def feed(self, stream: str, text: str) -> None:
        if not text or not self.enabled:
            return
        with self._lock:
            screen = self._screens.setdefault(stream, _Screen())
            screen.feed(text, drawing=_tqdm_drawing())
            self._lines(screen.take(screen.moves))

    def note(self, text: str) -> None:
        """Lines for the file only (a traceback that Python prints to the terminal itself)."""
        with self._lock:
            self._lines(text.rstrip("\n").split("\n"))

    def finish(self) -> None:
        """Write every row not written yet: the last state of bars still open, the last unfinished line."""
        with self._lock:
            for screen in self._screens.values():
                self._lines(screen.take_all())

    def _lines(self, lines: list[str]) -> None:
        if not self.enabled or not lines:
            return
        if self.path is None:
            self._held.extend(lines)
            del self._held[:-MAX_HELD_LINES]
        else:
            self._append(lines)

    def _append(self, lines: list[str]) -> None:
        try:
            safe_io.append_text(self.path, "".join(line + "\n" for line in lines))
        except OSError as error:
            self.enabled = False
            with contextlib.suppress(Exception):
                (self.warnings_to or sys.__stderr__).write(
                    f"edflow: warning: {error}; the console is no longer copied to {self.path}, the run goes on\n")


class _Tee:
    """A stream that writes to the original stream and feeds the console log; everything else is the original's
    (``fileno``, ``isatty``, ``encoding``: progress bars size themselves from the terminal)."""

    def __init__(self, original, log: ConsoleLog, name: str):
        self._original = original
        self._log = log
        self._name = name

    def write(self, text):
        written = self._original.write(text)
        try:
            self._log.feed(self._name, text if isinstance(text, str) else str(text))
        except Exception:  # copying must never break the print that caused it
            pass
        return written

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        self._original.flush()

    def __getattr__(self, name):
        return getattr(self._original, name)


def active() -> ConsoleLog | None:
    return _active


@contextlib.contextmanager
def capture():
    """Copy stdout and stderr into a ConsoleLog until the block ends; nested blocks share the outer one (``main``
    captures from the start, so the final error message lands in the file too; ``run`` alone captures as well)."""
    global _active
    if _active is not None:
        yield _active
        return
    log = ConsoleLog()
    stdout, stderr = sys.stdout, sys.stderr
    log.warnings_to = stderr
    sys.stdout, sys.stderr = _Tee(stdout, log, "stdout"), _Tee(stderr, log, "stderr")
    _active = log
    try:
        yield log
    except BaseException as error:
        if not isinstance(error, SystemExit):  # Python prints the traceback after this block: keep it too
            log.finish()
            log.note("".join(traceback.format_exception(error)))
        raise
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        log.finish()
        _active = None
        if isinstance(sys.stdout, _Tee) and sys.stdout._log is log:
            sys.stdout = stdout
        if isinstance(sys.stderr, _Tee) and sys.stderr._log is log:
            sys.stderr = stderr
