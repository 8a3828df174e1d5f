"""Shared fixtures: an isolated home per test, and stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import create_engine, text

from tutelage.cli import main
from tutelage.store import Store, open_store
from tutelage.web import create_app

REPO = Path(__file__).resolve().parents[1]
HH_RLHF = REPO.parent / "shared" / "data" / "hh-rlhf" / "helpful-base.test.jsonl.gz"
# Prepared models are shared between tests (and with `make setup`): converting one
# takes ~20 s and 0.5 GB, and tests of the conversion itself use their own folder.
MODELS = Path(
    os.environ.get("TUTELAGE_MODELS")
    or Path(os.environ.get("TUTELAGE_HOME", "~/.tutelage")).expanduser() / "models"
)
PG_URL = os.environ.get("TUTELAGE_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TUTELAGE_HOME", str(home))
    monkeypatch.setenv("TUTELAGE_MODELS", str(MODELS))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TUTELAGE_DB", raising=False)
    return home


@pytest.fixture
def hh_rlhf() -> Path:
    if not HH_RLHF.is_file():
        pytest.skip(f"{HH_RLHF} is not here (it comes with ../shared)")
    return HH_RLHF


def _postgres_schema_url() -> Iterator[str]:
    """Yield a URL whose connections live in a fresh schema of the test database."""
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not PG_URL:
        pytest.skip("TUTELAGE_TEST_DATABASE_URL is not set")
    yield from _postgres_schema_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def second_store(tmp_path: Path) -> Iterator[Store]:
    """Another empty store (SQLite), e.g. to import what was exported from the first."""
    opened = open_store(f"sqlite:///{tmp_path / 'second.db'}")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def smollm2_small(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SmolLM2-135M-Instruct cut to its first 4 of 30 layers: its real weights and
    tokenizer at a seventh of the cost, so the tests train in seconds on a CPU."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tutelage.training.dpo import default_policy

    try:
        full = default_policy()
    except Exception as exc:  # the bundled model is not installed here
        pytest.skip(f"SmolLM2 unavailable: {exc}")
    model = AutoModelForCausalLM.from_pretrained(full, dtype=torch.float32)
    model.model.layers = model.model.layers[:4]
    model.config.num_hidden_layers = 4
    folder = tmp_path_factory.mktemp("smollm2-4-layers")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(full).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`tutelage ARGS` in this process: the same entry point (`tutelage.cli.main`, which turns
    expected failures into one line and exit 1) without a second of start-up per call."""

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", ["tutelage", *args])
        code: int | str | None = 0
        try:
            main()
        except SystemExit as exit:
            code = exit.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code if isinstance(code, int) else 1, out, err)

    return invoke


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_server(store: Store) -> Iterator[str]:
    """The app on `store`, served by uvicorn on 127.0.0.1 in a thread; its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a busy machine starts it slowly
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
