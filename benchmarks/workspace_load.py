"""The expert workspace under load: simulated experts against the real server, vs Label Studio.

For each level C of concurrent experts (default 1, 16, 64) the benchmark serves a fresh
store from a uvicorn subprocess on 127.0.0.1 and lets C experts, each with their own API
token and connection, loop next task -> submit comparison through the JSON API for a
bounded time. Each level runs against one server process (as Label Studio's community
edition runs) and then against `tutelage serve --workers 2` (`--workers` picks). It
prints throughput, p50/p95/p99 latency of both calls, errors, and then checks the
stored rows: judgments stored against those acknowledged, and items leased to more
experts than the project's overlap. Last it times the TRL export of a store holding
50,000 expert judgments. SQLite first, then PostgreSQL when it answers.

The store holds 10,000 prompts, each with two answers; prompt and answers are ~900
characters of generated prose (seeded), like the peer's tasks. Set-up is not timed.
Judgments/s is acknowledged submits over the wall time from the start until the last
expert finished the cycle it was in at the deadline. Errors are non-2xx answers (a 204
from next counts apart, as "no task") and calls that timed out. Client and server run
on the same machine and share its cores.

    .venv/bin/python benchmarks/workspace_load.py [--levels 1 16 64] [--seconds 20]
        [--workers 1 2] [--overlap 1] [--no-postgres] [--postgres URL]
        [--profile server.prof]

`--profile DIR/NAME.prof` runs each one-process server under cProfile (every thread),
writes one file per server (DIR/NAME-sqlite-c16.prof, ...) and prints the functions that
take longest.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import pstats
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from tutelage.records import (
    Comparison,
    ComparisonOutcome,
    Completion,
    Message,
    Project,
    Prompt,
    Provenance,
    TaskKind,
)
from tutelage.store import open_store
from tutelage.store.tables import ComparisonRow, CompletionRow, PromptRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow
from tutelage.store.writer import RecordWriter
from tutelage.workspace.accounts import Actor, create_api_token, create_user
from tutelage.workspace.items import build_items
from tutelage.workspace.membership import accept_nda, add_member, new_project

PASSWORD = "benchmark password"
NDA = "What you read here stays here: do not copy, share or keep any part of it."
FIELD_CHARS = 900


@dataclass(frozen=True)
class Peer:
    """Label Studio 1.23.2 on this machine (one process, SQLite), from the issue."""

    per_second: float
    next_p50_ms: float
    next_p99_ms: float
    submit_p50_ms: float
    submit_p99_ms: float
    double_assigned: int
    stored_vs_acknowledged: str


LABEL_STUDIO = {
    1: Peer(3.8, 87, 146, 208, 365, 0, "equal"),
    16: Peer(2.0, 3_200, 38_000, 1_800, 3_800, 23, "stored 4 more than acknowledged"),
    64: Peer(1.3, 28_000, 60_000, 5_600, 35_000, 29, "-"),
}
LABEL_STUDIO_EXPORT_S = (50, 55)  # 50,000 tasks
TARGET_PER_SECOND_AT_64 = 200
TARGET_NEXT_P99_MS = {1: 10, 16: 50}
TARGET_EXPORT_S = 5


# --- content -------------------------------------------------------------------------

WORDS = (
    "the", "patient", "dose", "trial", "effect", "risk", "result", "method", "study", "data",
    "model", "answer", "because", "however", "therefore", "evidence", "measure", "report",
    "clinical", "review", "outcome", "sample", "cohort", "average", "variance", "signal",
    "baseline", "protocol", "approach", "question", "reason", "example", "case", "should",
    "could", "would", "often", "rarely", "always", "first", "second", "finally", "next",
    "early", "late", "high", "low", "rate", "level", "change", "increase", "decrease",
    "compare", "control", "group", "treatment", "analysis", "error", "bias", "estimate",
    "value", "range", "limit", "support", "claim", "source", "table", "figure", "section",
)  # fmt: skip


def prose(rng: random.Random, chars: int, *, markdown: bool) -> str:
    """Return about `chars` characters of sentences in paragraphs; with `markdown`, a list
    and some bold words too, so that rendering does the work real answers ask of it."""
    paragraphs: list[str] = []
    sentences: list[str] = []
    size = 0
    while size < chars:
        words = rng.choices(WORDS, k=rng.randint(8, 18))
        if markdown and rng.random() < 0.2:
            words[1] = f"**{words[1]}**"
        sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence)
        size += len(sentence) + 1
        if len(sentences) == 4:
            paragraphs.append(" ".join(sentences))
            sentences = []
    if sentences:
        paragraphs.append(" ".join(sentences))
    if markdown and len(paragraphs) > 1:
        items = paragraphs[1].split(". ")
        paragraphs[1] = "\n".join(f"- {item.rstrip('.')}" for item in items)
    return "\n\n".join(paragraphs)[:chars]


@dataclass(frozen=True)
class Template:
    """A prepared store that each level starts from a copy of."""

    url: str
    project_id: int
    expert_tokens: list[str]
    expert_ids: list[int]
    expert_handles: list[str]
    admin_token: str
    items: int


def build_template(url: str, *, prompts: int, experts: int, overlap: int, seed: int) -> Template:
    """Fill the empty store at `url`: project, prompts with two answers, items, people."""
    rng = random.Random(seed)
    store = open_store(url)
    try:
        with store.session() as session:
            admin_row = create_user(
                session, email="admin@bench.test", password=PASSWORD, handle="admin", role="admin"
            )
            admin = Actor(admin_row.id, "admin", "admin", frozenset())
            project = new_project(
                session,
                actor=admin,
                project=Project(
                    name="bench",
                    instructions="Pick the better answer.",
                    task_kinds=(TaskKind.COMPARISON,),
                    overlap=overlap,
                    nda_text=NDA,
                ),
            )
            project_id = project.id
            admin_token = create_api_token(session, user_id=admin.user_id, name="bench")
            writer = RecordWriter(session, project_id=project_id)
            for i in range(prompts):
                prompt = Prompt(
                    messages=(
                        Message(
                            role="user",
                            content=f"Case {i}. " + prose(rng, FIELD_CHARS, markdown=False),
                        ),
                    )
                )
                prompt_id = writer.prompt_id(prompt)
                for model in ("model-a", "model-b"):
                    answer = prose(rng, FIELD_CHARS, markdown=True)
                    writer.completion_id(prompt_id, Completion(text=answer, model_id=model))
            built = build_items(
                session, project_id=project_id, kinds=(TaskKind.COMPARISON,), actor_id=admin.user_id
            )
        tokens, ids, handles = [], [], []
        with store.session() as session:
            for i in range(experts):
                user = create_user(
                    session, email=f"expert{i}@bench.test", password=PASSWORD, handle=f"expert{i}"
                )
                expert = Actor(user.id, user.handle, user.role, frozenset())
                add_member(session, actor=admin, project_id=project_id, handle=user.handle)
                accept_nda(session, actor=expert, project_id=project_id)
                tokens.append(create_api_token(session, user_id=user.id, name="bench"))
                ids.append(user.id)
                handles.append(user.handle)
    finally:
        store.close()
    return Template(
        url=url,
        project_id=project_id,
        expert_tokens=tokens,
        expert_ids=ids,
        expert_handles=handles,
        admin_token=admin_token,
        items=built.created.get(TaskKind.COMPARISON.value, 0),
    )


def add_expert_judgments(url: str, template: Template, count: int, experts: int = 5) -> None:
    """Store `count` expert comparisons directly (not through HTTP), for the export."""
    store = open_store(url, migrate=False)
    try:
        with store.session() as session:
            rows = session.execute(
                select(CompletionRow.prompt_id, CompletionRow.id, CompletionRow.key)
                .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
                .where(PromptRow.project_id == template.project_id)
                .order_by(CompletionRow.prompt_id, CompletionRow.id)
            ).all()
            pairs = [
                (first.prompt_id, first, second)
                for first, second in zip(rows[::2], rows[1::2], strict=True)
            ]
            judges = list(zip(template.expert_ids, template.expert_handles, strict=True))[:experts]
            provenances = [Provenance(expert=handle, active_seconds=1.0) for _, handle in judges]
            writer = RecordWriter(session, project_id=template.project_id)
            for i in range(count):
                prompt_id, a, b = pairs[i % len(pairs)]
                judge = (i // len(pairs)) % len(judges)
                writer.add_comparison(
                    prompt_id=prompt_id,
                    a_id=a.id,
                    b_id=b.id,
                    comparison=Comparison(
                        a=a.key,
                        b=b.key,
                        outcome=ComparisonOutcome.A if i % 2 else ComparisonOutcome.B,
                        provenance=provenances[judge],
                    ),
                    expert_id=judges[judge][0],
                )
            writer.flush()
    finally:
        store.close()


# --- stores: a fresh one per level, copied from the template -------------------------


class SqliteStores:
    name = "SQLite"
    key = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def new(self, label: str) -> str:
        return f"sqlite:///{self.folder / label}.db"

    def copy(self, template: str, label: str) -> str:
        # The template's store was closed, so its WAL is checkpointed into the main file.
        shutil.copyfile(make_url(template).database or "", self.folder / f"{label}.db")
        return self.new(label)

    def settle(self, url: str) -> None:
        """Nothing to do: the store does not run ANALYZE on SQLite, so neither do we."""

    def drop(self, url: str) -> None:
        database = Path(make_url(url).database or "")
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        pass


class PostgresStores:
    """Databases named tutelage_bench_<pid>_<label>, created beside the one in `admin_url`."""

    name = "PostgreSQL"
    key = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"tutelage_bench_{os.getpid()}_"
        self.created: list[str] = []

    def _url(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    def _create(self, database: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"{clause}'))
        self.created.append(database)
        return self._url(database)

    def new(self, label: str) -> str:
        return self._create(self.prefix + label)

    def copy(self, template: str, label: str) -> str:
        return self._create(self.prefix + label, make_url(template).database)

    def settle(self, url: str) -> None:
        """ANALYZE the bulk-loaded template, as autovacuum soon would on a real server; the
        copies made from it keep its statistics."""
        engine = create_engine(make_url(url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text("ANALYZE"))
        finally:
            engine.dispose()

    def drop(self, url: str) -> None:
        database = make_url(url).database
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if database in self.created:
            self.created.remove(database)

    def close(self) -> None:
        for database in list(self.created):
            self.drop(self._url(database))
        self.engine.dispose()


def postgres_answers(admin_url: str) -> str | None:
    """Return None if PostgreSQL at `admin_url` answers, else why not."""
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return None


# --- the server ----------------------------------------------------------------------

# Run as `python -c SERVER URL PORT PROFILE CLOCK`. With a profile path, every thread gets
# its own cProfile (sync routes run in a thread pool) and the merged stats are written at
# shutdown; uvicorn re-raises the SIGINT it stops on, after its graceful shutdown.
# SIGUSR1 writes every thread's stack to the log, to see where a stuck server waits.
SERVER = """
import cProfile, faulthandler, signal, sys, threading, time
faulthandler.register(signal.SIGUSR1, all_threads=True)
url, port, profile_path, clock = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
workers = int(sys.argv[5])
if workers > 1:  # as `tutelage serve --workers N` runs them
    import os, uvicorn
    os.environ["TUTELAGE_DB"] = url
    uvicorn.run(
        "tutelage.web.app:app_from_environment", factory=True, workers=workers,
        host="127.0.0.1", port=port, log_level="warning", access_log=False,
    )
    sys.exit()
profiles = []
if profile_path:
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    def _profile_this_thread(frame, event, arg):
        profile = cProfile.Profile(timer)
        profiles.append(profile)
        profile.enable()
    threading.setprofile(_profile_this_thread)
    profiles.append(cProfile.Profile(timer))
    profiles[0].enable()
import uvicorn
from tutelage.store import open_store
from tutelage.web import create_app
store = open_store(url, migrate=False)
try:
    # as `tutelage serve` runs it
    uvicorn.run(
        create_app(store, freeze_startup=True), host="127.0.0.1", port=port, log_level="warning",
        access_log=False,
    )
finally:
    store.close()
    if profile_path:
        import pstats
        profiles[0].disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(profile_path)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """The workspace served from a subprocess; `cpu_seconds` reads its CPU time so far."""

    def __init__(self, url: str, log: Path, profile: Path | None, clock: str, workers: int) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.profile = profile
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    SERVER,
                    url,
                    str(self.port),
                    str(profile or ""),
                    clock,
                    str(workers),
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, token: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                answer = httpx.get(
                    f"{self.base_url}/api/v1/projects",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                )
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s")

    def where_threads_wait(self) -> Counter[str]:
        """Count the server's threads by their innermost tutelage frame (else innermost frame)."""
        before = self.log.stat().st_size
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        with self.log.open("rb") as handle:
            handle.seek(before)
            dump = handle.read().decode(errors="replace")
        places: Counter[str] = Counter()
        for block in dump.split("Thread 0x")[1:]:
            frames = [line.strip() for line in block.splitlines()[1:] if line.strip()]
            ours = [frame for frame in frames if "/tutelage/" in frame]
            place = (ours or frames or ["?"])[0]
            places[place.replace('File "', "").replace('", line ', ":")] += 1
        return places

    def cpu_seconds(self) -> float:
        """CPU time so far of the server and its worker processes."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat.parent.name == str(self.process.pid) or fields[1] == str(self.process.pid):
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        # A second SIGINT makes uvicorn stop waiting for requests still in flight.
        for wait in (15, 5):
            if self.process.poll() is not None:
                return
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
        self.process.kill()
        self.process.wait()


@contextmanager
def serving(
    url: str, token: str, folder: Path, profile: Path | None, clock: str, workers: int = 1
) -> Iterator[Server]:
    server = Server(url, folder / "server.log", profile, clock, workers)
    try:
        server.wait_ready(token)
        yield server
    finally:
        server.stop()


# --- the load ------------------------------------------------------------------------


@dataclass
class Calls:
    """What the simulated experts saw: latencies in ms, acknowledged submits, errors."""

    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acknowledged: int = 0
    no_task: int = 0  # 204 from next: nothing left for this expert
    errors: Counter[str] = field(default_factory=Counter)


async def expert(
    client: aiohttp.ClientSession, project_id: int, deadline: float, calls: Calls, seed: int
) -> None:
    """Loop next -> submit until the deadline; a started cycle is finished."""
    rng = random.Random(seed)
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with client.post(f"/api/v1/projects/{project_id}/next") as answer:
                status = answer.status
                view = await answer.json() if status == 200 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            calls.errors[f"next: {type(exc).__name__}"] += 1
            continue
        calls.next_ms.append((time.perf_counter() - started) * 1000)
        if status == 204:
            calls.no_task += 1
            await asyncio.sleep(0.05)
            continue
        if view is None:
            calls.errors[f"next: HTTP {status}"] += 1
            await asyncio.sleep(0.01)
            continue
        body = {"kind": "comparison", "choice": rng.choice("ab"), "active_seconds": 1.0}
        key = uuid.uuid4().hex
        # A submit whose answer was lost is sent once more with the same key, as the
        # workspace's own client does: the server then answers it without storing twice.
        for attempt in ("", " (sent again)"):
            started = time.perf_counter()
            try:
                async with client.post(
                    f"/api/v1/assignments/{view['assignment_id']}/judgment",
                    json=body,
                    headers={"Idempotency-Key": key},
                ) as answer:
                    status = answer.status
                    await answer.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                calls.errors[f"submit{attempt}: {type(exc).__name__}"] += 1
                continue
            calls.submit_ms.append((time.perf_counter() - started) * 1000)
            if status == 201:
                calls.acknowledged += 1
            else:
                calls.errors[f"submit{attempt}: HTTP {status}"] += 1
            break


async def drive(
    base_url: str,
    tokens: list[str],
    project_id: int,
    seconds: float,
    timeout: float,
    on_tick: Callable[[float, int], None],
) -> tuple[Calls, float]:
    """Run len(tokens) experts for `seconds`; return their calls and the wall time taken.

    Each expert has their own connection. The client is aiohttp, whose cost per call is
    a fraction of httpx's: client and server share this machine's cores, and the figures
    should measure the server.
    """
    calls = Calls()
    # The client's own full garbage collections would stop every expert for ~100 ms and
    # count as server latency; set-up's objects are frozen out of their way.
    gc.collect()
    gc.freeze()
    clients = [
        aiohttp.ClientSession(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=1),
        )
        for token in tokens
    ]
    started = time.perf_counter()
    deadline = started + seconds
    experts = [
        asyncio.create_task(expert(client, project_id, deadline, calls, seed=i))
        for i, client in enumerate(clients)
    ]
    while not all(task.done() for task in experts):
        on_tick(time.perf_counter() - started, calls.acknowledged)
        await asyncio.wait(experts, timeout=0.25)
    elapsed = time.perf_counter() - started
    for task in experts:
        task.result()
    for client in clients:
        await client.close()
    return calls, elapsed


# --- checking the store --------------------------------------------------------------


@dataclass(frozen=True)
class StoreCheck:
    stored: int  # expert comparisons in the store
    over_assigned: int  # items leased to more experts than the overlap
    over_judged: int  # items whose judged count exceeds the overlap
    counter_mismatch: int  # items whose judged/leased counters disagree with assignments
    leases_left: int
    open_items: int  # items still needing judgments when the level ended


def check_store(url: str, project_id: int, overlap: int) -> StoreCheck:
    store = open_store(url, migrate=False)
    try:
        with store.session() as session:
            stored = session.scalar(
                select(func.count(ComparisonRow.id)).where(
                    ComparisonRow.project_id == project_id, ComparisonRow.expert_id.is_not(None)
                )
            )
            per_item = (
                select(
                    AssignmentRow.item_id.label("item_id"),
                    func.count(AssignmentRow.user_id.distinct()).label("experts"),
                    func.count().filter(AssignmentRow.status == "submitted").label("submitted"),
                    func.count().filter(AssignmentRow.status == "leased").label("leased"),
                )
                .where(AssignmentRow.project_id == project_id)
                .group_by(AssignmentRow.item_id)
                .subquery()
            )
            over_assigned = session.scalar(
                select(func.count()).select_from(per_item).where(per_item.c.experts > overlap)
            )
            over_judged = session.scalar(
                select(func.count(ItemRow.id)).where(
                    ItemRow.project_id == project_id, ItemRow.judged > overlap
                )
            )
            mismatch = session.scalar(
                select(func.count())
                .select_from(ItemRow)
                .outerjoin(per_item, per_item.c.item_id == ItemRow.id)
                .where(
                    ItemRow.project_id == project_id,
                    (ItemRow.judged != func.coalesce(per_item.c.submitted, 0))
                    | (ItemRow.leased != func.coalesce(per_item.c.leased, 0)),
                )
            )
            leases_left = session.scalar(
                select(func.count(AssignmentRow.id)).where(
                    AssignmentRow.project_id == project_id, AssignmentRow.status == "leased"
                )
            )
            open_items = session.scalar(
                select(func.count(ItemRow.id)).where(
                    ItemRow.project_id == project_id, ItemRow.judged < overlap
                )
            )
    finally:
        store.close()
    return StoreCheck(
        stored=stored or 0,
        over_assigned=over_assigned or 0,
        over_judged=over_judged or 0,
        counter_mismatch=mismatch or 0,
        leases_left=leases_left or 0,
        open_items=open_items or 0,
    )


# --- running it all ------------------------------------------------------------------


@dataclass
class Level:
    experts: int
    workers: int
    seconds: float
    calls: Calls
    check: StoreCheck
    server_cpu: float
    client_cpu: float

    @property
    def per_second(self) -> float:
        return self.calls.acknowledged / self.seconds

    @property
    def errors(self) -> int:
        return sum(self.calls.errors.values())


@dataclass(frozen=True)
class Export:
    seconds: float
    rows: int
    megabytes: float
    status: int


@dataclass
class BackendResult:
    name: str
    levels: list[Level] = field(default_factory=list)
    export: Export | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def time_export(base_url: str, token: str, project_id: int, timeout: float) -> Export:
    """GET the TRL export and read the whole body; return seconds, rows and size."""
    rows = size = 0
    started = time.perf_counter()
    with httpx.stream(
        "GET",
        f"{base_url}/api/v1/projects/{project_id}/export",
        params={"format": "trl"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    ) as answer:
        for chunk in answer.iter_bytes():
            rows += chunk.count(b"\n")
            size += len(chunk)
    return Export(time.perf_counter() - started, rows, size / 2**20, answer.status_code)


def profile_path(
    base: Path | None, stores: SqliteStores | PostgresStores, label: str
) -> Path | None:
    if base is None:
        return None
    return base.with_name(f"{base.stem}-{stores.key}-{label}.prof")


def run_backend(
    stores: SqliteStores | PostgresStores,
    args: argparse.Namespace,
    folder: Path,
    console: Console,
) -> BackendResult:
    result = BackendResult(stores.name)
    started = time.perf_counter()
    with console.status(f"{stores.name}: preparing the template store"):
        template_url = stores.new("template")
        template = build_template(
            template_url,
            prompts=args.items,
            experts=max([*args.levels, 5]),  # the export's judgments come from five
            overlap=args.overlap,
            seed=args.seed,
        )
        stores.settle(template_url)
    console.log(
        f"{stores.name}: template store with {template.items:,} comparison items and "
        f"{len(template.expert_tokens)} experts ready in {time.perf_counter() - started:.0f} s"
    )
    try:
        for workers in args.workers:
            for experts in args.levels:
                result.levels.append(
                    run_level(stores, template, experts, workers, args, folder, console)
                )
        if args.export_rows:
            result.export = run_export(stores, template, args, folder, console)
    finally:
        stores.drop(template_url)
    return result


def run_level(
    stores: SqliteStores | PostgresStores,
    template: Template,
    experts: int,
    workers: int,
    args: argparse.Namespace,
    folder: Path,
    console: Console,
) -> Level:
    url = stores.copy(template.url, f"c{experts}")
    profile = profile_path(args.profile, stores, f"c{experts}") if workers == 1 else None
    name = f"{stores.name}, {processes(workers)}"
    try:
        with serving(
            url, template.expert_tokens[0], folder, profile, args.profile_clock, workers
        ) as server:
            server_cpu = server.cpu_seconds()
            client_cpu = time.process_time()
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                bar = progress.add_task(f"{name}, {experts} experts", total=args.seconds)

                def tick(elapsed: float, acknowledged: int) -> None:
                    progress.update(
                        bar,
                        completed=min(elapsed, args.seconds),
                        description=f"{name}, {experts} experts: {acknowledged:,} judgments",
                    )

                calls, seconds = asyncio.run(
                    drive(
                        server.base_url,
                        template.expert_tokens[:experts],
                        template.project_id,
                        args.seconds,
                        args.timeout,
                        tick,
                    )
                )
            client_cpu = time.process_time() - client_cpu
            server_cpu = server.cpu_seconds() - server_cpu
            if any("Timeout" in error for error in calls.errors):
                console.log(f"{name}, {experts} experts: calls timed out; server threads:")
                for place, count in server.where_threads_wait().most_common(8):
                    console.log(f"  {count:>3} in {place}")
        check = check_store(url, template.project_id, args.overlap)
    finally:
        stores.drop(url)
    level = Level(experts, workers, seconds, calls, check, server_cpu, client_cpu)
    console.log(
        f"{name}, {experts} experts: {level.per_second:,.1f} judgments/s, "
        f"{level.errors} errors, server CPU {server_cpu / seconds:.0%} "
        f"({server_cpu / max(calls.acknowledged, 1) * 1000:.1f} ms a judgment) and client "
        f"CPU {client_cpu / seconds:.0%} of one core"
    )
    if profile is not None:
        show_profile(profile, console)
    return level


def run_export(
    stores: SqliteStores | PostgresStores,
    template: Template,
    args: argparse.Namespace,
    folder: Path,
    console: Console,
) -> Export:
    url = stores.copy(template.url, "export")
    profile = profile_path(args.profile, stores, "export")
    try:
        with console.status(f"{stores.name}: storing {args.export_rows:,} expert judgments"):
            add_expert_judgments(url, template, args.export_rows)
        with (
            serving(url, template.admin_token, folder, profile, args.profile_clock) as server,
            console.status(f"{stores.name}: exporting {args.export_rows:,} judgments"),
        ):
            export = time_export(
                server.base_url, template.admin_token, template.project_id, args.timeout * 10
            )
    finally:
        stores.drop(url)
    console.log(
        f"{stores.name}: export of {export.rows:,} rows ({export.megabytes:,.0f} MB) "
        f"in {export.seconds:.1f} s"
    )
    if profile is not None:
        show_profile(profile, console)
    return export


# --- output --------------------------------------------------------------------------


def processes(workers: int) -> str:
    return "one process" if workers == 1 else f"{workers} worker processes"


def milliseconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.1f} ms"


def latency(values: list[float]) -> str:
    """p50 / p95 / p99 in ms, without units to keep the table narrow."""
    shown = []
    for q in (50, 95, 99):
        value = percentile(values, q)
        shown.append(
            "-" if math.isnan(value) else f"{value:,.1f}" if value < 10 else f"{value:,.0f}"
        )
    return " / ".join(shown)


def ratio(ours: float, theirs: float) -> str:
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return "-"
    value = ours / theirs
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def verdict(passed: bool) -> str:
    return "[green]PASS[/]" if passed else "[red]FAIL[/]"


def results_table(result: BackendResult, args: argparse.Namespace) -> Table:
    table = Table(
        title=f"{result.name}: {args.items:,} comparison items, overlap {args.overlap}, "
        f"{args.seconds:.0f} s per level"
    )
    columns = (
        "server processes",
        "experts",
        "judgments/s",
        "next ms p50 / p95 / p99",
        "submit ms p50 / p95 / p99",
        "errors",
        "no task (204)",
        "over-assigned",
        "acknowledged / stored",
        "CPU server / client",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for level in result.levels:
        check = level.check
        over = check.over_assigned + check.over_judged
        table.add_row(
            str(level.workers),
            str(level.experts),
            f"{level.per_second:,.1f}",
            latency(level.calls.next_ms),
            latency(level.calls.submit_ms),
            str(level.errors),
            str(level.calls.no_task),
            str(over),
            f"{level.calls.acknowledged:,} / {check.stored:,}",
            f"{level.server_cpu / level.seconds:.0%} / {level.client_cpu / level.seconds:.0%}",
        )
    return table


def comparison_lines(result: BackendResult) -> list[str]:
    """One line per level: ratios to Label Studio and each target's verdict."""
    lines = []
    for level in result.levels:
        next_p99 = percentile(level.calls.next_ms, 99)
        submit_p99 = percentile(level.calls.submit_ms, 99)
        check = level.check
        parts = [f"{processes(level.workers)}, {level.experts:>3} experts:"]
        peer = LABEL_STUDIO.get(level.experts)
        if peer is not None:
            parts.append(
                f"{ratio(level.per_second, peer.per_second)} Label Studio's judgments/s, "
                f"next p99 {ratio(peer.next_p99_ms, next_p99)} lower, "
                f"submit p99 {ratio(peer.submit_p99_ms, submit_p99)} lower;"
            )
        if level.experts == 64:
            parts.append(
                f">= {TARGET_PER_SECOND_AT_64} judgments/s "
                f"{verdict(level.per_second >= TARGET_PER_SECOND_AT_64)},"
            )
        if level.experts in TARGET_NEXT_P99_MS:
            goal = TARGET_NEXT_P99_MS[level.experts]
            parts.append(f"next p99 < {goal} ms {verdict(next_p99 < goal)},")
        parts.append(f"no errors {verdict(level.errors == 0)},")
        parts.append(
            f"no item over-assigned {verdict(check.over_assigned == 0 and check.over_judged == 0)},"
        )
        parts.append(f"stored == acknowledged {verdict(check.stored == level.calls.acknowledged)}")
        if level.calls.no_task and check.open_items:
            parts.append(
                f"[red]{level.calls.no_task} next calls answered 'no task' (204) while "
                f"{check.open_items:,} items still needed judgments[/]"
            )
        notes = []
        if level.calls.errors:
            notes.append(", ".join(f"{n} x {kind}" for kind, n in level.calls.errors.items()))
        if check.counter_mismatch:
            notes.append(f"{check.counter_mismatch} items' counters disagree with assignments")
        if check.leases_left:
            notes.append(f"{check.leases_left} leases left unsubmitted")
        if notes:
            parts.append(f"({'; '.join(notes)})")
        lines.append(" ".join(parts))
    if result.export is not None:
        export = result.export
        low, high = LABEL_STUDIO_EXPORT_S
        lines.append(
            f"export: {export.rows:,} rows, {export.megabytes:,.0f} MB in {export.seconds:.1f} s "
            f"(HTTP {export.status}), {low / export.seconds:,.0f}-{high / export.seconds:,.0f}x "
            f"faster than Label Studio's 50,000 tasks; < {TARGET_EXPORT_S} s "
            f"{verdict(export.seconds < TARGET_EXPORT_S and export.status == 200)}"
        )
    return lines


def peer_table() -> Table:
    table = Table(title="Label Studio 1.23.2 on this machine (one process, SQLite), from the issue")
    for column in ("experts", "annotations/s", "next p50 / p99", "submit p50 / p99"):
        table.add_column(column, justify="right")
    table.add_column("tasks given to two", justify="right")
    table.add_column("stored vs acknowledged")
    for experts, peer in LABEL_STUDIO.items():
        table.add_row(
            str(experts),
            f"{peer.per_second}",
            f"{milliseconds(peer.next_p50_ms)} / {milliseconds(peer.next_p99_ms)}",
            f"{milliseconds(peer.submit_p50_ms)} / {milliseconds(peer.submit_p99_ms)}",
            str(peer.double_assigned),
            peer.stored_vs_acknowledged,
        )
    return table


def show_profile(path: Path, console: Console, top: int = 25) -> None:
    """Print the functions with the most own time, and tutelage's with the most in total."""
    if not path.is_file():
        console.log(f"no profile at {path} (the server did not stop cleanly)")
        return
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = [
        (own, total, calls, f"{Path(file).name}:{line} {name}" if line else name, file)
        for (file, line, name), (_, calls, own, total, _) in stats.items()
    ]
    console.print(f"[bold]{path.name}[/]: own time, all threads")
    for own, total, calls, name, _ in sorted(rows, reverse=True)[:top]:
        console.print(f"  {own:8.2f} s own {total:8.2f} s total {calls:>9,} calls  {name}")
    console.print(f"[bold]{path.name}[/]: tutelage functions by total time")
    ours = [row for row in rows if "/tutelage/" in row[4]]
    for own, total, calls, name, _ in sorted(ours, key=lambda row: -row[1])[:top]:
        console.print(f"  {own:8.2f} s own {total:8.2f} s total {calls:>9,} calls  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels", type=int, nargs="*", default=[1, 16, 64], help="none: the export only"
    )
    parser.add_argument("--seconds", type=float, default=20, help="load time per level")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server processes to measure (as `tutelage serve --workers N`); 1 is how "
        "Label Studio was measured",
    )
    parser.add_argument("--overlap", type=int, default=1, help="experts per item")
    parser.add_argument("--items", type=int, default=10_000, help="prompts (one pair each)")
    parser.add_argument("--export-rows", type=int, default=50_000, help="0 skips the export")
    # Longer than the server's 30 s wait for a pooled connection, so that wait shows as its
    # error answer rather than as a client timeout.
    parser.add_argument("--timeout", type=float, default=45, help="client timeout per call, s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--profile", type=Path, help="write server profiles next to this path")
    parser.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="profile wall time (waits included) or each thread's CPU time",
    )
    args = parser.parse_args()
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # tables stay readable when the output is saved
    console.log(
        f"{os.cpu_count()} cores shared by the server (uvicorn: one process, then "
        f"`--workers N`) and the client (one asyncio process, aiohttp)"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="tutelage-bench-") as tmp:
        folder = Path(tmp)
        stores: list[SqliteStores | PostgresStores] = [SqliteStores(folder)]
        if not args.no_postgres:
            problem = postgres_answers(args.postgres)
            if problem is None:
                stores.append(PostgresStores(args.postgres))
            else:
                console.log(f"PostgreSQL skipped: {problem}")
        for backend in stores:
            try:
                results.append(run_backend(backend, args, folder, console))
            finally:
                backend.close()
    console.print(peer_table())
    for result in results:
        console.print(results_table(result, args))
        for line in comparison_lines(result):
            console.print(line)
        if result.name != "SQLite":
            console.print("(the targets are set for SQLite; shown here for comparison)")


if __name__ == "__main__":
    main()
