"""Generation back ends: the bundled SmolLM2 for real, and a real local HTTP server.

The language-model tests load the prepared SmolLM2 from the shared models folder
(conftest's TUTELAGE_MODELS), preparing it there first if `make setup` has not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import tutelage.generation
from tutelage.generation import (
    GenerationBackend,
    GenerationError,
    ModelUnavailableError,
    OpenAIBackend,
    TransformersBackend,
    backend_for,
    generate,
    prepare,
)
from tutelage.records import Completion, Message, Prompt

SMOLLM = "smollm2-135m-instruct"


def ask(text: str, system: str | None = None) -> Prompt:
    messages = [Message(role="system", content=system)] if system else []
    return Prompt(messages=(*messages, Message(role="user", content=text)))


def texts(results: list[list[Completion]]) -> list[list[str]]:
    return [[completion.text for completion in choices] for choices in results]


# --- the package surface ----------------------------------------------------------


def test_public_api() -> None:
    assert sorted(tutelage.generation.__all__) == sorted(
        [
            "DEFAULT_MODEL",
            "BundledModel",
            "GenerationBackend",
            "GenerationError",
            "ModelUnavailableError",
            "OpenAIBackend",
            "Preparation",
            "TransformersBackend",
            "backend_for",
            "bundled_models",
            "bundled_names",
            "generate",
            "model_path",
            "models_home",
            "prepare",
            "prepare_model",
            "served_models",
        ]
    )


def test_importing_generation_loads_neither_torch_nor_transformers(tmp_path: Path) -> None:
    # An empty models folder: listing then counts SmolLM2 from its GGUF file.
    env = {**os.environ, "TUTELAGE_MODELS": str(tmp_path)}
    code = (
        "import sys, tutelage.generation, tutelage.generation.cli\n"
        "tutelage.generation.bundled_models()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_bundled_model_that_is_not_prepared_says_how_to_prepare_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTELAGE_MODELS", str(tmp_path / "models"))
    with pytest.raises(ModelUnavailableError, match="run `tutelage models prepare"):
        backend_for(SMOLLM)


def test_an_encoder_or_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="encoder"):
        TransformersBackend("all-minilm-l6-v2")
    with pytest.raises(ModelUnavailableError, match=r"nor a folder with a config\.json"):
        backend_for(str(tmp_path / "nowhere"))


def test_a_local_folder_is_versioned_by_its_weights(tmp_path: Path) -> None:
    folder = tmp_path / "my-finetune"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"weights one")
    first = TransformersBackend(folder)  # nothing is loaded until generate()
    assert first.model_id == "my-finetune"
    assert len(first.model_version) == 12
    (folder / "model.safetensors").write_bytes(b"weights two")
    assert TransformersBackend(folder).model_version != first.model_version


def test_settings_are_checked_before_any_work() -> None:
    backend = OpenAIBackend("http://127.0.0.1:9", "m")
    with pytest.raises(ValueError, match="n must be at least 1"):
        backend.generate([ask("hi")], n=0)
    with pytest.raises(ValueError, match="temperature"):
        backend.generate([ask("hi")], temperature=-1)


# --- a real OpenAI-compatible server ----------------------------------------------


@dataclass
class EchoServer:
    """A tiny chat-completions server: answers with the last user message reversed."""

    honour_n: bool = True
    numbered: bool = False  # append " #i" so the n answers to one prompt differ
    fail_status: int | None = None
    delays: dict[str, float] = field(default_factory=dict)
    # Hold each request until this many were in flight at once (0: never), so that a
    # concurrency test does not depend on how fast the machine starts the client's threads.
    hold_until_in_flight: int = 0
    models: list[str] = field(default_factory=lambda: ["echo-1", "echo-2"])
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    max_in_flight: int = 0
    url: str = ""
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        if self.fail_status is not None:
            return self.fail_status, {"error": {"message": "model exploded", "type": "oops"}}
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": m} for m in self.models]}
        if path != "/v1/chat/completions" or body is None:
            return 404, {"detail": f"no route {path}"}
        last = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        with self._arrived:
            self._arrived.wait_for(
                lambda: self.max_in_flight >= self.hold_until_in_flight, timeout=120
            )
        time.sleep(self.delays.get(last, 0.0))
        count = body.get("n", 1) if self.honour_n else 1
        choices = [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": last[::-1] + (f" #{i}" if self.numbered else ""),
                },
            }
            | {"finish_reason": "stop"}
            for i in range(count)
        ]
        return 200, {"object": "chat.completion", "model": body["model"], "choices": choices}


def _handler(server: EchoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: dict[str, Any] | None) -> None:
            with server._lock:
                server._in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server._in_flight)
                with server._arrived:
                    server._arrived.notify_all()
                if body is not None:
                    server.requests.append(body)
                server.authorizations.append(self.headers.get("Authorization"))
            try:
                status, answer = server.answer(self.path, body)
            finally:
                with server._lock:
                    server._in_flight -= 1
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(None)

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            self._reply(json.loads(self.rfile.read(length)))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start EchoServers on free ports; they stop when the test ends."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(**options: Any) -> EchoServer:
        echo = EchoServer(**options)
        http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(echo))
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        running.append((http, thread))
        echo.url = f"http://127.0.0.1:{http.server_address[1]}"
        return echo

    yield start
    for http, thread in running:
        http.shutdown()
        http.server_close()
        thread.join()


def test_openai_backend_sends_the_request_and_reads_the_choices(serve: Any) -> None:
    server = serve()
    backend = OpenAIBackend(server.url + "/v1/", "echo-1", api_key="sk-test")
    prompt = ask("hello there", system="be brief")
    [[first, second]] = backend.generate([prompt], n=2, temperature=0.3, max_new_tokens=17, seed=5)
    assert first.text == second.text == "ereht olleh"
    assert [server.requests[0]] == server.requests
    assert server.requests[0] == {
        "model": "echo-1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
        "n": 2,
        "temperature": 0.3,
        "max_tokens": 17,
        "seed": 5,
    }
    assert server.authorizations == ["Bearer sk-test"]
    assert (first.model_id, first.model_version) == ("echo-1", "")
    assert first.generation == {
        "backend": "openai",
        "base_url": server.url,
        "temperature": 0.3,
        "max_new_tokens": 17,
        "seed": 5,
        "finish_reason": "stop",
        "served_model": "echo-1",
    }


def test_prompts_run_concurrently_and_come_back_in_order(serve: Any) -> None:
    words = [f"prompt {i}" for i in range(6)]
    # The first prompts answer last: order must come from the prompts, not the clock.
    server = serve(delays={w: 0.3 - 0.05 * i for i, w in enumerate(words)}, hold_until_in_flight=3)
    backend = OpenAIBackend(server.url, "echo-1", concurrency=3)
    results = backend.generate([ask(w) for w in words])
    assert texts(results) == [[w[::-1]] for w in words]
    assert server.max_in_flight == 3


def test_n_is_met_when_the_server_ignores_it(serve: Any) -> None:
    server = serve(honour_n=False)
    results = OpenAIBackend(server.url, "echo-1").generate([ask("abc")], n=3, seed=10)
    assert texts(results) == [["cba", "cba", "cba"]]
    # Each repeat asks only for what is missing, with a fresh seed.
    assert [(r["n"], r["seed"]) for r in server.requests] == [(3, 10), (2, 11), (1, 12)]


def test_the_api_key_comes_from_the_environment(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    OpenAIBackend(server.url, "echo-1").generate([ask("x")], seed=None)
    assert server.authorizations == ["Bearer sk-env"]
    assert "seed" not in server.requests[0]


def test_a_server_error_names_the_url_status_and_message(serve: Any) -> None:
    server = serve(fail_status=500)
    backend = OpenAIBackend(server.url, "echo-1")
    with pytest.raises(GenerationError) as caught:
        backend.generate([ask("x")])
    assert str(caught.value) == (
        f"{server.url}/v1/chat/completions answered HTTP 500: model exploded"
    )


def test_a_closed_port_is_reported_as_such() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m")
    endpoint = f"http://127.0.0.1:{port}/v1/chat/completions"
    with pytest.raises(GenerationError) as caught:
        backend.generate([ask("x")])
    message = str(caught.value)
    assert message.startswith(f"could not connect to {endpoint} (")
    assert message.endswith("is the server running?")


def test_backend_for_reads_the_model_from_the_fragment_or_the_server(serve: Any) -> None:
    server = serve()
    named = backend_for(f"{server.url}/v1#echo-2")
    assert isinstance(named, OpenAIBackend)
    assert named.model_id == "echo-2"
    assert server.requests == [] and server.authorizations == []  # no lookup needed
    first = backend_for(server.url)
    assert first.model_id == "echo-1"
    assert [[c.text for c in cs] for cs in first.generate([ask("ok")])] == [["ko"]]
    assert isinstance(first, GenerationBackend)


def test_backend_for_a_server_listing_no_models(serve: Any) -> None:
    server = serve(models=[])
    with pytest.raises(GenerationError, match="lists no models"):
        backend_for(server.url)


# --- the bundled SmolLM2, for real ------------------------------------------------


@pytest.fixture(scope="session")
def smollm_folder() -> Path:
    # Session fixtures run outside the per-test environment, so this prepares into
    # the same shared folder conftest points TUTELAGE_MODELS at.
    return prepare(SMOLLM, progress=False)


@pytest.fixture(scope="session")
def smollm(smollm_folder: Path) -> TransformersBackend:
    return TransformersBackend(smollm_folder, batch_size=8)


# Under `pytest -n`, the tests that load the model share one worker and one copy of it.
loads_model = pytest.mark.xdist_group("smollm2-generation")

PROMPTS = [
    ask("What is the capital of France?"),
    ask("Hi"),
    ask("Write one sentence about the sea, please, and make it calm and short."),
]


@pytest.mark.slow
@loads_model
def test_the_bundled_model_answers_a_question(smollm: TransformersBackend) -> None:
    [[answer]] = smollm.generate(PROMPTS[:1], temperature=0, max_new_tokens=16)
    assert "Paris" in answer.text
    assert answer.model_id == SMOLLM
    assert answer.model_version == smollm.model_version
    assert len(answer.model_version) == 12
    assert answer.generation == {
        "backend": "transformers",
        "temperature": 0,
        "max_new_tokens": 16,
        "seed": None,
        "do_sample": False,
        "finish_reason": "stop",
    }


@pytest.mark.slow
@loads_model
def test_batched_greedy_output_equals_one_at_a_time(smollm: TransformersBackend) -> None:
    alone = [smollm.generate([p], temperature=0, max_new_tokens=12)[0] for p in PROMPTS]
    together = smollm.generate(PROMPTS, temperature=0, max_new_tokens=12)
    assert texts(together) == texts(alone)
    assert all(choices[0].text for choices in together)


@pytest.mark.slow
@loads_model
def test_sampling_gives_n_completions_and_a_seed_repeats_them(
    smollm: TransformersBackend,
) -> None:
    first = smollm.generate(PROMPTS, n=2, temperature=1.0, max_new_tokens=8, seed=3)
    assert [len(choices) for choices in first] == [2, 2, 2]
    again = smollm.generate(PROMPTS, n=2, temperature=1.0, max_new_tokens=8, seed=3)
    other = smollm.generate(PROMPTS, n=2, temperature=1.0, max_new_tokens=8, seed=4)
    assert texts(again) == texts(first)
    assert texts(other) != texts(first)
    assert first[0][0].generation["seed"] == 3
    assert first[0][0].generation["do_sample"] is True


@pytest.mark.slow
@loads_model
def test_greedy_n_repeats_the_one_greedy_answer(smollm: TransformersBackend) -> None:
    [choices] = smollm.generate(PROMPTS[1:2], n=2, temperature=0, max_new_tokens=6)
    assert len(choices) == 2 and choices[0].text == choices[1].text
    assert choices[0].generation["finish_reason"] in {"stop", "length"}


@pytest.mark.slow
@loads_model
def test_generate_by_bundled_name(smollm_folder: Path) -> None:
    backend = backend_for(SMOLLM)
    assert isinstance(backend, TransformersBackend)
    assert backend.folder == smollm_folder
    [[answer]] = generate(PROMPTS[:1], temperature=0, max_new_tokens=16, model=SMOLLM)
    assert "Paris" in answer.text
