"""`tutelage serve --workers 2`: several processes share one SQLite store without losing
or doubling work, and every write waits its turn instead of failing as "locked"."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tutelage.store import open_store
from tutelage.store.tables import ComparisonRow
from tutelage.store.workspace_tables import AssignmentRow
from tutelage.workspace.accounts import create_api_token
from workspace_fixtures import make_world


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300  # worker processes start slowly on a busy machine
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not come up:\n{log.read_text()}")


@contextmanager
def _serving(database: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`tutelage serve --workers 2` on the SQLite file, up and answering; stopped after."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tutelage", "serve", "--db", f"sqlite:///{database}"]
    command += ["--port", str(port), "--workers", "2"]
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ)
    try:
        _wait_until_up(base, server, log)
        yield base, server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


async def _work(base: str, token: str, project_id: int) -> int:
    """Judge until the queue is empty; return how many submits were acknowledged."""
    acknowledged = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        while True:
            lease = await client.post(f"/api/v1/projects/{project_id}/next")
            if lease.status_code == 204:
                return acknowledged
            assert lease.status_code == 200, lease.text
            view = lease.json()
            answer = await client.post(
                f"/api/v1/assignments/{view['assignment_id']}/judgment",
                json={"kind": "comparison", "choice": "a", "active_seconds": 2.0},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert answer.status_code == 201, answer.text
            acknowledged += 1


def test_two_worker_processes_share_one_sqlite_store(tmp_path: Path) -> None:
    database = tmp_path / "served.db"
    store = open_store(f"sqlite:///{database}")
    world = make_world(store, tmp_path, pairs=40, experts=4, overlap=2)
    with store.session() as session:
        tokens = [create_api_token(session, user_id=e.user_id) for e in world.experts]
    store.close()

    log = tmp_path / "server.log"
    with _serving(database, log) as (base, server):

        async def everyone() -> list[int]:
            return await asyncio.gather(*(_work(base, t, world.project_id) for t in tokens))

        results = asyncio.run(everyone())
        # Both processes answered: uvicorn starts a supervisor and two workers.
        workers = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(workers) >= 2
    assert "database is locked" not in log.read_text()

    acknowledged = sum(results)
    assert acknowledged == 40 * 2  # every item judged by two experts, no more, no fewer
    store = open_store(f"sqlite:///{database}")
    try:
        with store.session() as session:
            stored = session.scalar(
                select(func.count(ComparisonRow.id)).where(ComparisonRow.expert_id.is_not(None))
            )
            per_item = session.execute(
                select(AssignmentRow.item_id, func.count(AssignmentRow.id))
                .where(AssignmentRow.status == "submitted")
                .group_by(AssignmentRow.item_id)
            ).all()
    finally:
        store.close()
    assert stored == acknowledged
    assert {count for _, count in per_item} == {2}


def _workers(log: Path) -> list[str]:
    """The worker processes the server started, in order (their ids, from its log)."""
    return re.findall(r"Started server process \[(\d+)\]", log.read_text())


def test_a_lost_worker_is_logged_with_its_cause_and_replaced(tmp_path: Path) -> None:
    database = tmp_path / "served.db"
    open_store(f"sqlite:///{database}").close()
    log = tmp_path / "server.log"
    with _serving(database, log) as (base, server):
        deadline = time.monotonic() + 300
        while len(_workers(log)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # On a starved machine the supervisor may stop a worker for a missed health check
        # before our kill is seen; then that worker is gone already, and the next one is
        # killed instead. Each loss is logged with its cause either way.
        for _attempt in range(3):
            stopped = set(re.findall(r"worker process \[(\d+)\] did not answer", log.read_text()))
            victim = next(w for w in reversed(_workers(log)) if w not in stopped)
            started = len(_workers(log))
            with contextlib.suppress(ProcessLookupError):  # replaced meanwhile
                os.kill(int(victim), signal.SIGKILL)  # as the kernel's OOM killer would
            while time.monotonic() < deadline:
                text = log.read_text()
                if f"worker process [{victim}] was killed by SIGKILL" in text:
                    break
                if f"worker process [{victim}] did not answer its health check" in text:
                    break
                time.sleep(0.1)
            if f"worker process [{victim}] was killed by SIGKILL" in text:
                break
        else:
            raise AssertionError(f"no word of the lost worker:\n{log.read_text()}")
        assert "out of memory, or kill -9" in text and "starting another" in text
        while time.monotonic() < deadline:
            if len(_workers(log)) > started:  # the lost worker's replacement
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the lost worker was not replaced")
        _wait_until_up(base, server, log)  # and the server still serves
