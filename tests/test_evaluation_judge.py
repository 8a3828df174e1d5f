"""`tutelage eval judge` on the demo project, with LLM judges behind a real
OpenAI-compatible HTTP server on 127.0.0.1 whose habits are known: one always answers
"A" (all position, no judgment), one prefers the longer answer whatever its place."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from tutelage.cli import app
from tutelage.demo import set_up_demo
from tutelage.demo.workspace import seed_workspace
from tutelage.evaluation import EvaluationError, list_evaluations
from tutelage.store import Store


def verdict(judge: str, prompt: str) -> str:
    if judge == "always-a":
        return "A"
    first = re.search(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]", prompt, re.S)
    second = re.search(r"\[Answer B\]\n(.*)\Z", prompt, re.S)
    assert first is not None and second is not None, prompt
    return "A" if len(first.group(1)) >= len(second.group(1)) else "B"


class JudgeHandler(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []  # the judge prompts received, in order

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        self.asked.append(prompt)
        reply = {"role": "assistant", "content": verdict(body["model"], prompt)}
        answer = {
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": reply, "finish_reason": "stop"}],
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def judge_url() -> Iterator[str]:
    JudgeHandler.asked.clear()
    http = ThreadingHTTPServer(("127.0.0.1", 0), JudgeHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()
    http.server_close()
    thread.join()


def test_eval_judge_on_the_demo_project(store: Store, store_url: str, judge_url: str) -> None:
    set_up_demo(store)
    seed_workspace(store)
    runner = CliRunner()
    command = ["eval", "judge", "--project", "demo", "--db", store_url]

    blind = runner.invoke(app, [*command, "--judge", f"{judge_url}#always-a", "--json"])
    assert blind.exit_code == 0, blind.output
    figures = json.loads(blind.stdout)
    n = figures["n"]
    assert n >= 5 and len(JudgeHandler.asked) == 2 * n  # every pair in both orders
    # "A" both times is the same position twice: no verdict, half credit everywhere
    assert figures["position_bias"] == {"consistent": 0.0, "first_preference": 1.0}
    assert figures["agreement"] == 0.5
    assert figures["experts"]["judges"] >= 2  # the demo's experts, beside the judge

    longer = runner.invoke(app, [*command, "--judge", f"{judge_url}#longer"])
    assert longer.exit_code == 0, longer.output
    lines = longer.stdout.splitlines()
    assert lines[0].startswith(f"{n} items of demo with a decisive consensus")
    assert "the same verdict in both orders on 100.0% of pairs" in lines[1]
    assert "the experts: Krippendorff's alpha" in lines[2]
    with store.session() as session:
        kept = list_evaluations(session)
    assert [e.kind for e in kept] == ["judge", "judge"]
    assert kept[0].model == f"{judge_url}#longer" and kept[0].results["n"] == n

    missing = runner.invoke(app, [*command, "--judge", "no-such-folder"])
    assert isinstance(missing.exception, EvaluationError)
    assert "no reward model folder at no-such-folder" in str(missing.exception)
    empty = runner.invoke(
        app, ["eval", "judge", "--project", "nope", "--judge", judge_url, "--db", store_url]
    )
    assert empty.exit_code == 1
