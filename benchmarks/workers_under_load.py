"""`tutelage serve --workers 2` on PostgreSQL under load on a busy machine: are workers lost?

Fills a fresh PostgreSQL database (a project of `--prompts` pairs, `--experts` experts),
starts `tutelage serve --workers 2` as a user would, keeps `--hogs` processes spinning on
the CPU beside it (a training run, another service), and lets the experts loop next task
-> submit through the JSON API for `--seconds`. It prints the judgments acknowledged per
second, the errors, and every worker the server lost or replaced, with the cause its log
gives ("worker process [PID] was killed by ...").

    .venv/bin/python benchmarks/workers_under_load.py [--postgres URL] [--seconds 90]
        [--experts 128] [--hogs 6] [--prompts 20000]

The database named by `--postgres` is dropped and created again.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from workspace_load import build_template, drive


def _spin() -> None:
    while True:
        pass


def _fresh_database(url: str) -> None:
    parsed = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/tut_load")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--experts", type=int, default=128)
    parser.add_argument("--hogs", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=20_000)
    args = parser.parse_args()
    _fresh_database(args.postgres)
    print(f"setting up {args.prompts:,} pairs and {args.experts} experts …", flush=True)
    template = build_template(
        args.postgres, prompts=args.prompts, experts=args.experts, overlap=1, seed=0
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Path(tempfile.mkdtemp()) / "server.log"
    command = [sys.executable, "-m", "tutelage", "serve", "--workers", "2", "--port", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*command, "--db", args.postgres], stdout=output, stderr=subprocess.STDOUT
        )
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/login", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        print(f"load: {args.experts} experts for {args.seconds:.0f} s, {args.hogs} CPU hogs …")
        calls, wall = asyncio.run(
            drive(
                base, template.expert_tokens, template.project_id, args.seconds, 45, print_nothing
            )
        )
    finally:
        for hog in hogs:
            hog.terminate()
        server.send_signal(signal.SIGINT)
        server.wait(60)
    lines = log.read_text()
    lost = re.findall(r"worker process \[\d+\] [^\n]*", lines) + re.findall(r".*died.*", lines)
    print(
        f"acknowledged {calls.acknowledged:,} in {wall:.1f} s ({calls.acknowledged / wall:.1f}/s)"
    )
    print(f"errors: {dict(calls.errors) or 'none'}")
    print(f"workers lost: {len(lost)}" + "".join(f"\n  {line}" for line in lost))
    os.remove(log)


def print_nothing(_seconds: float, _count: int) -> None:
    pass


if __name__ == "__main__":
    main()
