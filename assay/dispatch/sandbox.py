"""Runs services in a child process, so a crash, a hang or a memory blow-up costs only the child.

The parent sends the calls of one stage together; the child answers each as soon as it is done,
and the parent waits at most each service's own time limit for its answer. The child has an
address-space limit. When the child dies or overruns, the parent kills it, reports a
:class:`ServiceFailure` for that call and runs the calls left in a fresh child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from assay.dispatch.analysis import ErrorKind
from assay.services.base import FileRequest, Result

_CONTEXT = multiprocessing.get_context("spawn")
STARTUP_SECONDS = 120


@dataclass(frozen=True)
class Call:
    """One service to run on one file, with the longest it may take."""

    service: str
    request: FileRequest
    timeout: float


@dataclass(frozen=True)
class ServiceFailure:
    """Why a service produced no result: an exception, a timeout or a crash."""

    kind: ErrorKind
    message: str


def _child_main(conn: Connection, memory_mb: int, extra_modules: tuple[str, ...]) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from assay.services import registry

    registry.load_extra(extra_modules)
    registry.services()  # import every service once, before the first file
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        for name, request in message:
            conn.send(_run_one(registry, name, request))


def _run_one(registry: Any, name: str, request: FileRequest) -> Result | ServiceFailure:
    service = registry.service(name)
    if service is None:
        return ServiceFailure(ErrorKind.EXCEPTION, f"no service named {name}")
    try:
        return service.execute(request)
    except MemoryError:
        return ServiceFailure(ErrorKind.EXCEPTION, "ran out of memory (limit reached)")
    except Exception as exc:  # a service bug must become an error record, not a dead worker
        return ServiceFailure(ErrorKind.EXCEPTION, f"{type(exc).__name__}: {exc}"[:2000])


class Sandbox:
    """One child process executing services on behalf of one worker thread."""

    def __init__(self, memory_mb: int, extra_modules: tuple[str, ...] = ()) -> None:
        self.memory_mb = memory_mb
        self.extra_modules = extra_modules
        self._process: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        parent, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(
            target=_child_main, args=(child, self.memory_mb, self.extra_modules), daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent
        # Start-up (importing every service) must not count against the first file's time limit.
        if not parent.poll(STARTUP_SECONDS) or parent.recv() != "ready":
            self._kill()
            raise RuntimeError("the service sandbox did not start")
        return parent

    def execute(self, service: str, request: FileRequest, timeout: float) -> Result | ServiceFailure:
        return self.execute_many([Call(service, request, timeout)])[0]

    def execute_many(self, calls: list[Call]) -> list[Result | ServiceFailure]:
        """Outcomes of ``calls``, in order, for the price of one round trip when nothing fails."""
        outcomes: list[Result | ServiceFailure] = []
        while len(outcomes) < len(calls):
            left = calls[len(outcomes) :]
            fresh = self._conn is None
            try:
                conn = self._conn or self._start()
                conn.send([(call.service, call.request) for call in left])
            except (EOFError, OSError, RuntimeError) as exc:
                self._kill()
                if not fresh:
                    continue  # the child had died since the last calls: start a fresh one
                failure = ServiceFailure(ErrorKind.CRASH, f"could not start the sandbox: {exc}")
                return outcomes + [failure] * len(left)
            outcomes.extend(self._answers(conn, left))
        return outcomes

    def _answers(self, conn: Connection, calls: list[Call]) -> list[Result | ServiceFailure]:
        """Answers as they arrive; stops after the first call that hangs or kills the child."""
        answers: list[Result | ServiceFailure] = []
        for call in calls:
            try:
                if not conn.poll(call.timeout):
                    self._kill()
                    return [
                        *answers,
                        ServiceFailure(ErrorKind.TIMEOUT, f"{call.service} did not finish within {call.timeout:g} s"),
                    ]
                answers.append(conn.recv())
            except (EOFError, OSError, BrokenPipeError):
                code = self._process.exitcode if self._process is not None else None
                self._kill()
                reason = f"{call.service} crashed its process (exit code {code})"
                return [*answers, ServiceFailure(ErrorKind.CRASH, reason)]
        return answers

    def _kill(self) -> None:
        if self._process is not None and self._process.pid is not None:
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = None
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        if self._process is not None:
            self._process.join(2)
        self._kill()
