"""Child processes that die with their parent and stop in order."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    def set_parent_death_signal() -> None:
        # Linux only: if `tierflow up` is killed outright, its children are not left behind.
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig))
        except OSError:
            return

    return set_parent_death_signal


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            user=user,
            cwd=cwd,
            preexec_fn=_die_with_parent(death_signal),
        )


def stop(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, grace_s: float = 20) -> None:
    """Ask politely, then insist."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def port_is_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], timeout_s: float, what: str, log_file: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see {log_file}")
        if port_is_open(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout_s:.0f}s; see {log_file}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def is_root() -> bool:
    return os.geteuid() == 0
