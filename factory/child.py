"""Helper processes started as `python -m MODULE FD ...`, talking over a socket pair.

Not `multiprocessing`: its spawn mode re-imports the caller's `__main__`, so every script that
calls factory would need an `if __name__ == "__main__"` guard (and fails confusingly without
one), and fork is unsafe in a process that holds threads (torch, the progress display). The
child gets its end of a socket pair as FD and wraps it in `multiprocessing.connection.
Connection`, so both sides exchange pickled messages. When the parent dies, even by `kill -9`,
the child reads EOF and exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])  # so the child imports this same checkout


def spawn_child(module: str, *args: str) -> tuple[Connection, subprocess.Popen]:
    ours, theirs = socket.socketpair()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-m", module, str(theirs.fileno()), *args],
        pass_fds=[theirs.fileno()],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    theirs.close()  # the parent keeps one end: EOF tells either side the other is gone
    return Connection(ours.detach()), child


def child_connection(fd: str) -> Connection:
    return Connection(int(fd))
