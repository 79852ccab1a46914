"""The bubblewrap sandbox against the attacks of RELIABILITY.md (S1–S20): each attack gets the
right status, and no process it started is left behind.

Every program is tagged: it renames itself (prctl PR_SET_NAME, inherited by forks) to a marker
unique to the test, and puts the marker in the argv of anything it executes, so `leftovers`
finds its processes by /proc scan even while other sandboxes run on the machine. No test is
skipped: CI installs bubblewrap, and a machine without it must fail here.
"""

from __future__ import annotations

import ast
import hashlib
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from filters import sandbox, sandbox_launcher
from filters.sandbox import Limits, SandboxUnavailable, reject_reason, run_cases, run_program

FAST = Limits(timeout_s=1.0)


def marker() -> str:
    return "sbx" + uuid.uuid4().hex[:12]  # 15 chars: the most PR_SET_NAME keeps


def tagged(program: str, mark: str) -> str:
    """`program` preceded by a line that renames the process (and its forks) to `mark`."""
    return f"import ctypes; ctypes.CDLL(None).prctl(15, {mark!r}.encode(), 0, 0, 0)\n{program}"


def leftovers(mark: str) -> list[str]:
    """Live processes whose name or command line carries `mark`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if mark.encode() in comm or mark.encode() in cmdline:
            found.append(f"{pid} {comm.strip()!r} {cmdline[:80]!r}")
    return found


def run_tagged(program: str, limits: Limits = FAST, stdin: bytes = b"", **kw):
    mark = marker()
    result = run_program(tagged(program.replace("MARK", mark), mark), stdin, limits, **kw)
    assert leftovers(mark) == [], "processes survived the sandbox"
    return result


SLEEPER = "[sys.executable, '-S', '-c', 'import time; time.sleep(1000)', 'MARK']"

# (id, program, expected status, text that must be in stdout)
ATTACKS = [
    ("S1-busy-loop", "while True: pass", "timeout", ""),
    ("S2-sleep", "import time\ntime.sleep(10**6)", "timeout", ""),
    (
        "S3-fork-bomb",
        # forks until RLIMIT_NPROC stops it, reports how far it got, then spins
        "import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(1000)\n"
        "    n += 1\nprint('forked', n, flush=True)\nwhile True: pass",
        "timeout",
        "forked",
    ),
    ("S3-fork-bomb-recursive", "import os\nwhile True:\n    os.fork()", "error", ""),
    (
        "S4-setsid-daemon",
        f"import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, {SLEEPER})\n    os._exit(0)\nprint('done')",
        "ok",
        "done",
    ),
    (
        "S5-grandchild-holds-stdout",
        f"import subprocess, sys\nsubprocess.Popen({SLEEPER})\nprint(42)",
        "ok",
        "42",
    ),
    ("S6-huge-allocation", "x = bytearray(10**11)", "memory", ""),
    ("S6-2gb-line-in-memory", "print('x' * (2 * 10**9))", "memory", ""),
    ("S7-endless-printing", "while True: print('y' * 100)", "output_limit", ""),
    (
        "S7-endless-line",
        "import sys\nwhile True: sys.stdout.write('x' * 65536)",
        "output_limit",
        "",
    ),
    (
        "S7-endless-stderr",
        "import sys\nwhile True: sys.stderr.write('e' * 65536)",
        "output_limit",
        "",
    ),
    (
        "S8-one-10gb-file",  # RLIMIT_FSIZE: EFBIG at max_file_bytes
        "n = 0\ntry:\n    with open('/tmp/big', 'wb') as f:\n        for _ in range(10240):\n"
        "            f.write(b'x' * (1 << 20))\n            n += 1\n"
        "finally:\n    print('mb', n, flush=True)",
        "error",
        "mb 16",
    ),
    (
        "S8-many-files",  # the /tmp tmpfs is capped: ENOSPC near tmpfs_mb
        "n = 0\ntry:\n    for i in range(10240):\n        open(f'/tmp/f{i}', 'wb').write(b'x' * (1 << 20))\n"
        "        n += 1\nfinally:\n    print('mb', n, flush=True)",
        "error",
        "mb 6",
    ),
    (
        "S13-ignores-alarm-and-xcpu",
        "import signal\nfor s in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True: pass",
        "timeout",
        "",
    ),
    (
        "S15-kill-parent-and-pid1",
        "import os\nfor pid in (os.getppid(), 1, -1):\n    try:\n        os.kill(pid, 9)\n"
        "    except OSError as e:\n        print('refused', pid, e.errno)\nprint('alive')",
        "ok",
        "alive",
    ),
    ("S15-setuid-root", "import os\nos.setuid(0)", "error", ""),
    (
        "S15-unshare-user-namespace",
        "import ctypes, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "sys.exit(3 if libc.unshare(0x10000000) == 0 else 0)",
        "ok",
        "",
    ),
    (
        "S15-ptrace-pid1",
        "import ctypes, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "sys.exit(3 if libc.ptrace(16, 1, 0, 0) == 0 else 0)",  # PTRACE_ATTACH
        "ok",
        "",
    ),
    (
        "S15-prlimit-on-pid1",
        "import resource\nresource.prlimit(1, resource.RLIMIT_NOFILE, (3, 3))",
        "error",
        "",
    ),
    ("S16-million-files", "fs = [open('/dev/null') for _ in range(10**6)]", "error", ""),
    (
        "S17-thousand-busy-threads",  # as many as RLIMIT_NPROC allows; all killed at the deadline
        "import threading\ndef spin():\n    while True: pass\ntry:\n    for _ in range(1000):\n"
        "        threading.Thread(target=spin, daemon=True).start()\nexcept RuntimeError:\n"
        "    pass\nwhile True: pass",
        "timeout",
        "",
    ),
]


ATTACK = {a[0]: a[1] for a in ATTACKS}


@pytest.mark.parametrize(
    "program,status,needle", [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_attack_gets_its_status_and_leaves_nothing(program, status, needle):
    t0 = time.monotonic()
    result = run_tagged(program)
    assert result.status == status, (result.detail, result.stderr[-300:])
    assert needle.encode() in result.stdout
    assert result.sandbox == "bwrap"
    assert time.monotonic() - t0 < FAST.timeout_s + 3  # killed promptly, no parent backstop


def test_limits_bound_what_attacks_got():
    bomb = run_tagged(ATTACK["S3-fork-bomb"])
    assert 0 < int(bomb.stdout.split()[1]) < FAST.max_processes  # RLIMIT_NPROC held, as root too
    threads = run_tagged(  # RLIMIT_NPROC counts threads too
        "import threading\nn = 0\ntry:\n    for _ in range(1000):\n"
        "        threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "        n += 1\nexcept RuntimeError:\n    print('threads', n)"
    )
    assert 0 < int(threads.stdout.split()[1]) < FAST.max_processes
    flood = run_tagged("while True: print('y' * 100)")
    assert flood.stdout_truncated and len(flood.stdout) == FAST.max_output_bytes
    many = run_tagged(ATTACK["S8-many-files"])
    assert int(many.stdout.split()[1]) <= FAST.tmpfs_mb


def test_grandchild_holding_stdout_is_no_timeout():
    """S5: the program finished; a child that keeps the pipe open must not make it a timeout."""
    result = run_tagged(ATTACK["S5-grandchild-holds-stdout"], Limits(timeout_s=10))
    assert result.status == "ok" and result.stdout == b"42\n"
    assert result.wall_s < 2


def test_slow_memory_growth_is_memory():
    program = "x = []\nwhile True:\n    x.append(bytearray(10**6))"
    result = run_tagged(program, Limits(timeout_s=5, memory_mb=128))
    assert result.status == "memory"


def test_jobs_run_unprivileged_with_nothing_but_the_system():
    program = (
        "import os\nstatus = open('/proc/self/status').read()\n"
        "print(os.getuid(), os.getgid())\n"
        "print([l for l in status.splitlines() if l.startswith(('CapEff', 'CapPrm', 'CapAmb', 'NoNewPrivs'))])\n"
        "print(sorted(os.listdir('/')))\nprint(sorted(os.environ))"
    )
    result = run_tagged(program)
    assert result.status == "ok"
    ids, caps, root, env = result.stdout.decode().splitlines()
    uid = int(ids.split()[0])
    assert uid != 0
    if os.geteuid() == 0:  # a root runner drops each sandbox to a fresh uid (RLIMIT_NPROC)
        assert uid >= 1_000_000
    assert "CapEff:\\t0000000000000000" in caps and "CapAmb:\\t0000000000000000" in caps
    assert "NoNewPrivs:\\t1" in caps
    assert "work" not in root and "home" not in root
    assert env == "['LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED']"


def test_environment_secrets_never_reach_the_program(monkeypatch):
    """S10: a canary token in the runner's environment appears nowhere in the output."""
    token = "canary-" + uuid.uuid4().hex
    monkeypatch.setenv("FACTORY_SECRET_TOKEN", token)
    program = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n    try:\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except Exception as e:\n        print(pid, e)"
    )
    result = run_tagged(program)
    assert result.status == "ok"
    assert token.encode() not in result.stdout + result.stderr


def test_no_network():
    """S11: a listener on the runner's loopback gets no connection and 0 bytes; DNS fails."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        tcp = run_tagged(
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "s.sendall(b'stolen secrets')"
        )
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert tcp.status == "error" and b"ConnectionRefusedError" in tcp.stderr
    dns = run_tagged("import socket\nsocket.getaddrinfo('pypi.org', 443)")
    assert dns.status == "error" and b"gaierror" in dns.stderr


def test_files_outside_survive_and_the_next_program_passes(tmp_path):
    """S9: deleting files outside the sandbox and overwriting /bin/bash change nothing."""
    canary = tmp_path / "canary.txt"
    canary.write_text("still here")
    bash = Path("/bin/bash")
    bash_hash = hashlib.sha256(bash.read_bytes()).hexdigest()
    program = (
        "import os, shutil\n"
        f"targets = [{str(canary)!r}, '/bin/bash', '/usr/bin/python3', '/etc/ld.so.cache', "
        f"{str(Path(sandbox.__file__))!r}, {str(Path(sandbox_launcher.__file__))!r}, "
        "'/sandbox/prog.py', '/sandbox/launcher.py']\n"
        "for path in targets:\n"
        "    for attack in (os.remove, lambda p: open(p, 'wb').write(b'pwned')):\n"
        "        try:\n            attack(path)\n            print('DONE', path)\n"
        "        except OSError as e:\n            print('refused', path, e.errno)\n"
        f"shutil.rmtree({str(tmp_path)!r}, ignore_errors=True)\nprint('end')"
    )
    result = run_tagged(program)
    assert result.status == "ok" and b"end" in result.stdout
    assert b"DONE" not in result.stdout
    assert canary.read_text() == "still here"
    assert hashlib.sha256(bash.read_bytes()).hexdigest() == bash_hash
    assert run_program("print(6 * 7)").stdout == b"42\n"


def test_repository_home_and_hidden_files_are_not_visible():
    """S12 (the sandbox half): nothing of the repo, the home directory or the tests is inside;
    of home, at most the path down to the interpreter's prefix exists (bind-mount parents)."""
    repo = Path(__file__).resolve().parents[2]
    hidden = [repo, repo / "tests", repo / "README.md", Path("/work"), Path("/proc/1/environ")]
    program = (
        "import os\n"
        f"for path in {[str(p) for p in hidden]!r}:\n"
        "    try:\n        open(path).close() if os.path.isfile(path) else os.listdir(path)\n"
        "        print('SEEN', path)\n"
        "    except OSError as e:\n        print('hidden', path, e.errno)\n"
        f"print(sorted(os.listdir({str(Path.home())!r})) if os.path.isdir({str(Path.home())!r}) else [])"
    )
    result = run_tagged(program)
    assert result.status == "ok"
    *lines, home = result.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["hidden"] * len(hidden)
    prefix = Path(sandbox._python()).parents[1]
    allowed = (
        {prefix.relative_to(Path.home()).parts[0]} if prefix.is_relative_to(Path.home()) else set()
    )
    assert set(ast.literal_eval(home)) <= allowed


def test_cases_share_one_sandbox_each_with_its_own_deadline():
    program = "import sys, time\nn = int(input())\nif n == 2:\n    time.sleep(100)\nprint(n * n)"
    inputs = [b"1", b"3", b"2", b"4"]
    results = run_cases(program, inputs, FAST, stop_early=False)
    assert [r.status for r in results] == ["ok", "ok", "timeout", "ok"]
    assert [r.stdout for r in results[:2]] == [b"1\n", b"9\n"] and results[3].stdout == b"16\n"
    assert 1.0 <= results[2].wall_s < 2.5
    early = run_cases(program, inputs, FAST)
    assert [r.status for r in early] == ["ok", "ok", "timeout"]


def test_the_parent_deadline_kills_a_sandbox_that_overruns(monkeypatch):
    """Backstop: if the launcher itself ran long, the parent kills PID 1 and the namespace."""
    monkeypatch.setattr(sandbox, "STARTUP_S", -(5.0 + sandbox.KILL_S) + 0.5)
    mark = marker()
    result = run_program(tagged("import time\ntime.sleep(100)", mark), limits=Limits(timeout_s=5))
    assert result.status == "timeout" and "deadline" in result.detail
    assert result.wall_s < 3
    assert leftovers(mark) == []


# S18: rejected before running
REJECTED = [
    ("50-mb", "x = 1\n" * ((50 << 20) // 6), "over"),
    ("nul-byte", "print(1)\x00", "NUL"),
    ("invalid-utf8-bytes", b"print('\xff\xfe')", "UTF-8"),
    ("lone-surrogate", "print('\udcff')", "UTF-8"),
]


@pytest.mark.parametrize("source,why", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_bad_sources_are_rejected_before_running(source, why):
    t0 = time.monotonic()
    result = run_program(source)
    assert result.status == "rejected" and why in result.detail
    assert result.sandbox == "none"
    assert time.monotonic() - t0 < 1
    assert reject_reason(source, 1 << 20) is not None


def test_source_size_cap_is_configurable():
    assert reject_reason("print(1)\n" * 100, 500) is not None
    assert run_program("print(1)\n" * 100, limits=Limits(max_source_bytes=500)).status == "rejected"
    assert reject_reason("print(1)", 500) is None


def test_missing_bubblewrap_refuses_unless_unsafe(monkeypatch):
    """S20: no bwrap → a clear error naming the fix; unsafe=True runs and says so."""
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        run_program("print(1)")
    result = run_program("print(sum(range(10)))", unsafe=True)
    assert (result.status, result.stdout, result.sandbox) == ("ok", b"45\n", "unsafe")


def test_unsafe_mode_still_enforces_time_and_kills_daemons(monkeypatch):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    assert run_tagged("while True: pass", unsafe=True).status == "timeout"
    daemon = run_tagged(
        ATTACK["S4-setsid-daemon"], unsafe=True
    )  # setsid grandchild: reaped as our orphan
    assert (daemon.status, daemon.stdout, daemon.sandbox) == ("ok", b"done\n", "unsafe")


def test_a_working_bubblewrap_is_used_even_when_unsafe_is_allowed():
    assert run_program("print(1)", unsafe=True).sandbox == "bwrap"
