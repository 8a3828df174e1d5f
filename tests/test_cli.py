"""The `tutelage` command as a user runs it: exit codes, messages, stored results."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tutelage.cli import app
from tutelage.store import open_store
from tutelage.store.projects import project_summary
from tutelage.workspace.errors import WorkspaceError

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutelage", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1200,  # generous: a machine four times slower still finishes
    )


def command_paths() -> list[list[str]]:
    """Every leaf command of the CLI, as the words a user types after `tutelage`."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        # typer bundles its own click, so look for sub-commands rather than a click.Group
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])
        else:
            paths.append(prefix)

    walk(root, [])
    return paths


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paths = command_paths()
    assert len(paths) >= 10
    assert run("--help").returncode == 0  # the entry point itself, as a user starts it
    runner = CliRunner()
    for path in paths:  # in-process: a new interpreter per command costs seconds each
        result = runner.invoke(app, [*path, "--help"], prog_name="tutelage")
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output
        assert f"`tutelage {' '.join(path)}`" in readme, f"README lacks tutelage {path}"


def test_import_export_through_the_command(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    source = tmp_path / "pairs.jsonl"
    source.write_text(
        "\n".join(
            json.dumps({"prompt": f"q{i}", "chosen": "yes", "rejected": "no"}) for i in range(3)
        )
        + "\n",
        encoding="utf-8",
    )
    imported = run("import", str(source), "--project", "p", "--db", db)
    assert imported.returncode == 0, imported.stderr
    assert "3 lines read" in imported.stdout and "3 stored" in imported.stdout

    out = tmp_path / "out.parquet"
    exported = run("export", "--project", "p", "--format", "trl", "--out", str(out), "--db", db)
    assert exported.returncode == 0, exported.stderr
    assert out.is_file() and "wrote 3 records" in exported.stdout

    with open_store(db).session() as session:
        assert project_summary(session, name="p").judgments["comparisons"] == 3


def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": \n', "utf-8")

    result = run("import", str(bad), "--project", "p", "--db", db)

    assert result.returncode == 1
    assert f"{bad}:2:" in result.stderr
    assert "Traceback" not in result.stderr
    listed = cli("projects", "list", "--db", db)
    assert " p " not in listed.stdout  # the failed import left no project behind

    missing = cli("export", "--project", "nope", "--format", "trl", "--out", "x.jsonl", "--db", db)
    assert missing.returncode == 1 and "no project named 'nope'" in missing.stderr


def test_db_env_var_sets_the_default_store(tmp_path: Path) -> None:
    db_path = tmp_path / "env.db"
    result = run("projects", "create", "envproj", env={"TUTELAGE_DB": f"sqlite:///{db_path}"})
    assert result.returncode == 0, result.stderr
    assert db_path.is_file()


def test_skip_invalid_reports_the_reasons(tmp_path: Path, cli: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        '{"prompt": "q", "chosen": "a", "rejected": "b"}\nnot json\n'
        '{"prompt": "q2", "chosen": "a", "rejected": "a"}\n',
        "utf-8",
    )
    result = cli("import", str(mixed), "--project", "p", "--skip-invalid", "--db", db)
    assert result.returncode == 0, result.stderr
    assert "1 stored, 2 skipped" in result.stdout
    assert "chosen and rejected are identical" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_login_page(url: str, process: subprocess.Popen[str]) -> None:
    """Wait until the server answers (however slow the machine), or the process ends."""
    while process.poll() is None:
        try:
            if httpx.get(f"{url}/login", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the demo ended before serving:\n{process.communicate()}")


@pytest.mark.slow
def test_demo_serves_while_it_sets_up_and_is_idempotent(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    errors = (tmp_path / "demo.err").open("w+")
    demo = subprocess.Popen(
        [sys.executable, "-m", "tutelage", "demo", "--max-new-tokens", "16", "--db", db,
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=errors, text=True, env=dict(os.environ),
        # Ctrl-C must reach it even where this suite runs as a background job, whose
        # children start with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    shown = []
    try:
        _wait_for_login_page(url, demo)
        # The printed admin signs in while the candidates are still being made.
        signed_in = httpx.post(
            f"{url}/api/v1/auth/login",
            json={"email": "admin@demo.tutelage", "password": "demo-admin-password"},
            timeout=60,
        )
        assert signed_in.status_code == 200, signed_in.text
        assert demo.stdout is not None
        for line in demo.stdout:  # then it finishes setting up, and keeps serving
            shown.append(line)
            if line.startswith("ready:"):
                break
        assert httpx.get(f"{url}/login", timeout=60).status_code == 200
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        demo.communicate(timeout=600)
    errors.seek(0)
    err = errors.read()
    assert demo.returncode == 0, err
    assert "Traceback" not in err
    assert any(line.startswith("smollm2-135m-instruct:") for line in shown)  # an answer
    with open_store(db).session() as session:
        summary = project_summary(session, name="demo")
    # The 12 sample pairs, and five simulated experts' judgments of its 44 comparison items.
    assert summary.judgments["comparisons"] >= 12 + 5 * 44
    assert summary.prompts_with_fewer_than_two_completions == 0
    second = cli("demo", "--max-new-tokens", "16", "--no-serve", "--db", db)
    assert second.returncode == 0, second.stderr
    assert "exists already" in second.stdout and "generated" not in second.stdout
    with open_store(db).session() as session:
        assert project_summary(session, name="demo") == summary
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        busy = cli("serve", "--port", str(port), "--db", db)
    finally:
        taken.close()
    assert busy.returncode == 1 and "Traceback" not in busy.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr

    report = cli("quality", "report", "--project", "demo", "--json", "--bootstrap", "0", "--db", db)
    assert report.returncode == 0, report.stderr
    quality = json.loads(report.stdout)
    flags: dict[str, set[str]] = {}
    for flag in quality["flags"]:
        flags.setdefault(quality["names"][flag["worker"]], set()).add(flag["kind"])
    assert "inverted" in flags["demo-expert-5"]  # the label flipper
    assert {"position_bias", "too_fast"} <= flags["demo-expert-4"]  # always A, in 2 to 5 s
    assert not {"demo-expert-1", "demo-expert-2", "demo-expert-3"} & set(flags)
    assert quality["agreement"]["overall"]["outcome_alpha"]["value"] is not None


def test_projects_create_and_show(tmp_path: Path, cli: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    nda = tmp_path / "nda.txt"
    nda.write_text("Keep it secret.", "utf-8")
    created = cli(
        "projects",
        "create",
        "cardio",
        "--domain",
        "medicine",
        "--pay-rate",
        "180",
        "--nda-file",
        str(nda),
        "--db",
        db,
    )
    assert created.returncode == 0, created.stderr
    shown = cli("projects", "show", "--project", "cardio", "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert "cardio" in shown.stdout and "medicine" in shown.stdout
    again = cli("projects", "create", "cardio", "--db", db)
    assert again.returncode == 1 and "exists already" in again.stderr
    bad_rate = cli("projects", "create", "x", "--pay-rate", "-5", "--db", db)
    assert bad_rate.returncode == 1 and "pay_rate_per_hour" in bad_rate.stderr


def test_users_create_token_and_list(tmp_path: Path, cli: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n", "utf-8")
    created = cli(
        "users", "create", "--email", "Ada@Example.org", "--handle", "ada", "--role", "admin",
        "--password-file", str(secret), "--db", db,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = cli("users", "token", "ada", "--db", db)
    assert token.returncode == 0 and token.stdout.strip().startswith("tut_")
    listed = cli("users", "list", "--db", db)
    assert "ada@example.org" in listed.stdout and "admin" in listed.stdout
    weak = tmp_path / "weak"
    weak.write_text("short", "utf-8")
    refused = cli(
        "users", "create", "--email", "b@example.org", "--handle", "b",
        "--password-file", str(weak), "--db", db,
    )  # fmt: skip
    assert refused.returncode == 1 and "at least 10 characters" in refused.stderr
    assert cli("users", "token", "nobody", "--db", db).returncode == 1


def test_users_deactivate_tokens_and_revoke(tmp_path: Path, cli: Callable[..., Any]) -> None:
    from tutelage.workspace.accounts import user_for_api_token

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    secret = tmp_path / "secret"
    secret.write_text("a long enough password", "utf-8")
    for handle in ("ada", "bo"):
        created = cli(
            "users", "create", "--email", f"{handle}@example.org", "--handle", handle,
            "--password-file", str(secret), "--db", db,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
    first = cli("users", "token", "ada", "--name", "laptop", "--db", db).stdout.strip()
    second = cli("users", "token", "bo", "--db", db).stdout.strip()
    listed = cli("users", "tokens", "ada", "--db", db)
    assert listed.returncode == 0 and "laptop" in listed.stdout and first not in listed.stdout
    revoked = cli("users", "revoke", "1", "--db", db)
    assert revoked.returncode == 0, revoked.stderr
    again = cli("users", "revoke", "1", "--db", db)
    assert again.returncode == 1 and "revoked already" in again.stderr
    gone = cli("users", "deactivate", "bo", "--reason", "left", "--db", db)
    assert gone.returncode == 0, gone.stderr
    store = open_store(db)
    with store.session() as session:
        for token in (first, second):
            with pytest.raises(WorkspaceError):
                user_for_api_token(session, token=token)
    store.close()
    listing = cli("users", "list", "--db", db).stdout
    assert any(line.split()[:2] == ["│", "bo"] and "no" in line for line in listing.splitlines())
