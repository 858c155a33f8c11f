"""Encode candidates side by side, one worker process each, so a second fit uses the second core.

A training step is a chain of small tensor operations: two torch threads run
one fit only ~1.3x faster than one on an AMD EPYC family 26 (an untimed
default encode of a Kodak image: 54.5 s alone with two threads, 71 s with one
thread beside another encode; bench/results/kodak-default-4000-2026-12-04)
and no faster on a family 25 (148.7 s against 147.0 s at 1 bpp;
bench/results/kodak-default-pair-2026-12-05). Two fits, one thread each, use
the cores fully instead.

Each worker is a fresh interpreter (`python -m inrcodec.train.side_by_side`)
running `encoder._encode_once` on one schedule, so its file is the bytes the
same fit writes in-process with the same thread count. Not multiprocessing:
its spawn start method imports the caller's `__main__` again, which breaks a
user's script without a `__main__` guard, and forking a process whose
OpenMP threads have run can hang. The request goes to the worker's stdin as
a JSON line and the raw pixels; the worker answers with JSON lines on stdout:
progress, then the result, whose file is base64: data only, never code.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ..errors import InrcodecError

if TYPE_CHECKING:  # the encoder imports this module
    from .encoder import EncodeOptions, EncodeResult
    from .fit import ProgressFn, Schedule

FAILED_WORKER_GRACE_S = 5.0  # how long a failed worker may take to exit on its own (its status is the reason)
STDERR_TAIL = 500  # characters of a failed worker's last stderr line quoted in its error


class CandidateError(InrcodecError, RuntimeError):
    """A worker process died or answered nonsense."""


def encode_side_by_side(pixels: np.ndarray, opts: EncodeOptions, schedules: tuple[Schedule, ...],
                        threads: int, progress: ProgressFn | None = None, start: float | None = None,
                        limit: float | None = None) -> list[EncodeResult]:
    """One encode per schedule, all at once, each in a worker with `threads` torch threads.

    With `limit`, each encode ends within `limit` seconds of `start` (this
    process's `time.monotonic()`; the workers' start-up, ~1.3 s, comes out of
    it). Progress is reported as the candidates' steps summed (the first
    candidate's statistics), from this thread. The workers are killed if
    this returns early (an error, Ctrl-C, SIGTERM).
    """
    # Monotonic clocks need not agree between processes: a worker gets the
    # start as a wall-clock time and turns it back into its own clock.
    started_at = time.time() - (0.0 if start is None else time.monotonic() - start)
    workers: list[_Worker] = []
    try:
        # All started before any request: a worker reads its request once it
        # has imported torch (~1.3 s), and they import at once.
        for number in range(len(schedules)):
            workers.append(_Worker.start(threads, number))
        for worker, schedule in zip(workers, schedules):
            worker.send(pixels, opts, schedule, threads, started_at, limit)
        return _collect(workers, progress)
    finally:
        for worker in workers:
            worker.stop()


class _Worker:
    """One worker process, its stdout read line by line into a shared queue by a thread."""

    def __init__(self, process: subprocess.Popen, stderr: IO[bytes], number: int) -> None:
        self.process, self.stderr, self.number = process, stderr, number
        self.result: EncodeResult | None = None

    @classmethod
    def start(cls, threads: int, number: int) -> _Worker:
        stderr = tempfile.TemporaryFile()
        process = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, env=_worker_environment(threads))
        return cls(process, stderr, number)

    def send(self, pixels: np.ndarray, opts: EncodeOptions, schedule: Schedule, threads: int,
             started_at: float, limit: float | None) -> None:
        """The request: a JSON line, then the pixels' bytes."""
        request = {"options": dataclasses.asdict(opts), "schedule": dataclasses.asdict(schedule),
                   "threads": threads, "shape": list(pixels.shape), "started_at": started_at, "limit": limit}
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.write(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
            stdin.close()
        except OSError:  # it died at once; `_collect` reports why from its stderr
            pass

    def read_into(self, events: queue.Queue) -> None:
        """Put (number, message or None at the end) on `events` for each line of the worker's stdout."""
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                try:
                    events.put((self.number, json.loads(line)))
                except ValueError:
                    events.put((self.number, {"junk": line[:200].decode(errors="replace")}))
        finally:
            events.put((self.number, None))

    def failure(self, why: str) -> CandidateError:
        """The error to raise for this worker, once it has ended (killed if it still runs after a moment).

        A worker that wrote nonsense may still be fitting: waiting for it
        would hold the error back for the rest of its fit.
        """
        try:
            self.process.wait(timeout=FAILED_WORKER_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.seek(0)
        # Its last line only: a traceback is for developers, and the reason
        # (an exception's message) ends it.
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        last = lines[-1][:STDERR_TAIL] if lines else ""
        code = self.process.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return CandidateError(f"encode candidate {self.number + 1} {why} ({status})" + (f": {last}" if last else ""))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:  # a request left half-written to a dead worker
                    pass
        self.stderr.close()


def worker_command() -> list[str]:
    """The command line of a worker process."""
    return [sys.executable, "-m", __name__]


def _worker_environment(threads: int) -> dict[str, str]:
    """The caller's environment, with this inrcodec first on the path and OpenMP held to `threads`."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def _collect(workers: list[_Worker], progress: ProgressFn | None) -> list[EncodeResult]:
    """Wait for every worker's result, forwarding progress; raise on the first failure."""
    from .encoder import EncodeResult

    events: queue.Queue = queue.Queue()
    for worker in workers:
        threading.Thread(target=worker.read_into, args=(events,), daemon=True).start()
    latest: list[tuple[int, int, dict[str, float]] | None] = [None] * len(workers)
    running = len(workers)
    while running:
        number, message = events.get()
        worker = workers[number]
        if message is None:
            running -= 1
            if worker.result is None:
                raise worker.failure("ended without a result")
        elif "progress" in message:
            latest[number] = tuple(message["progress"])  # type: ignore[assignment]
            if progress is not None and latest[0] is not None:
                done = [p for p in latest if p is not None]
                progress(sum(p[0] for p in done), sum(p[1] for p in done), latest[0][2])
        elif "error" in message:
            if message["error"] == "MemoryError":
                raise MemoryError(f"encode candidate {number + 1}")
            raise CandidateError(f"encode candidate {number + 1} failed: {message['error']}: {message['message']}")
        elif "result" in message:
            fields = dict(message["result"])
            fields["data"] = base64.b64decode(fields["data"])
            worker.result = EncodeResult(**fields)
        else:
            raise worker.failure(f"wrote an unexpected line {message!r:.200}")
    return [worker.result for worker in workers]  # type: ignore[misc]


def _schedule_from(fields: dict[str, Any]) -> Schedule:
    from .fit import Schedule

    return Schedule(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker: read one request, encode, write progress lines and the result."""
    # Ctrl-C reaches the whole process group: the parent answers it (it kills
    # its workers and says "interrupted"); a worker dying first would make it
    # report a failed candidate instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    import torch

    from .encoder import EncodeOptions, _encode_once

    request = json.loads(stdin.readline())
    torch.set_num_threads(int(request["threads"]))
    shape = tuple(request["shape"])
    pixels = np.frombuffer(stdin.read(int(np.prod(shape))), dtype=np.uint8).reshape(shape)
    opts = EncodeOptions(**request["options"])
    last_report = 0.0

    def report(it: int, total: int, stats: dict[str, float]) -> None:
        nonlocal last_report
        if os.getppid() != parent:  # the parent died without killing us (SIGKILL): nobody wants the file
            os._exit(1)
        now = time.monotonic()
        if now - last_report >= 0.1 or it == total:  # a step is ~25 ms: a line each would be noise
            last_report = now
            _write(stdout, {"progress": [it, total, stats]})

    try:
        start = time.monotonic() - (time.time() - float(request["started_at"]))
        result = _encode_once(pixels, opts, _schedule_from(request["schedule"]), start, request["limit"], report)
    except Exception as exc:  # the parent raises it as one line; the traceback would only confuse a user
        _write(stdout, {"error": type(exc).__name__, "message": str(exc)[:STDERR_TAIL]})
        sys.exit(1)
    fields = dataclasses.asdict(result)
    fields["data"] = base64.b64encode(result.data).decode()
    _write(stdout, {"result": fields})


def _write(stdout: IO[bytes], message: dict[str, Any]) -> None:
    stdout.write(json.dumps(message).encode() + b"\n")
    stdout.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
