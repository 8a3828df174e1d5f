"""`tutelage serve --workers N`: uvicorn's supervisor of worker processes, saying why it
replaces one.

uvicorn's own supervisor replaces a worker that exited or did not answer its health check
within 5 s with one line, "Child process [PID] died", whatever happened. A worker on a
busy machine (a load test, a training run beside it) can miss 5 s; and an operator needs
to know whether a worker was killed (out of memory), exited on an error, or hung. This
one gives its workers 30 s and logs which it was. It builds on uvicorn's `Multiprocess`
and `Process` (uvicorn.supervisors.multiprocess), overriding only the check.
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

__all__ = ["HEALTHCHECK_SECONDS", "Supervisor", "exit_cause", "serve_workers"]

HEALTHCHECK_SECONDS = 30
logger = logging.getLogger("uvicorn.error")


def exit_cause(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = " (out of memory, or kill -9)" if exitcode == -signal.SIGKILL else ""
        return f"was killed by {name}{why}"
    return f"exited with status {exitcode} (its error is logged above)"


class Supervisor(Multiprocess):
    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if not process.process.is_alive():
                cause = exit_cause(process.exitcode)
            elif process.ping(self.config.timeout_worker_healthcheck):
                continue
            else:
                cause = (
                    f"did not answer its health check within "
                    f"{self.config.timeout_worker_healthcheck} s (stuck, or starved of CPU), "
                    "and was stopped"
                )
            pid = process.pid
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error(f"worker process [{pid}] failed to start; stopping the server")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.error(f"worker process [{pid}] {cause}; starting another")
            replacement = Process(self.config, self.sockets)
            replacement.start()
            self.processes[index] = replacement


def serve_workers(listener: socket.socket, workers: int, **options: Any) -> None:
    """Serve `tutelage.web.app:app_from_environment` from `workers` processes that accept
    on `listener` (bound already, so a taken port was refused before)."""
    config = Config(
        "tutelage.web.app:app_from_environment",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
        **options,
    )
    Supervisor(config, sockets=[listener]).run()
