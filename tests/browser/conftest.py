"""The real server on a real demo store, driven by Debian's headless Chromium.

The server is `create_app` under uvicorn in a thread on 127.0.0.1; every request the
browser makes to any other host is refused and recorded, so a test can assert that the
pages load nothing from elsewhere.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tutelage.demo import DEMO_PROJECT, set_up_demo
from tutelage.demo.workspace import seed_workspace
from tutelage.interchange import import_file
from tutelage.store import Store, open_store
from tutelage.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"

# Answers the sample files lack: a third answer to one sample question (so there is a
# ranking item) and a multi-turn conversation with two answers, one with code.
FOLLOW_UP = [
    {"role": "user", "content": "How do I read a whole text file in Python?"},
    {"role": "assistant", "content": "Call `open(path).read()`; it returns the text."},
    {"role": "user", "content": "And how do I make sure the file gets closed?"},
]
EXTRA_ANSWERS = [
    [
        {"role": "user", "content": "What is a normal resting heart rate for an adult?"},
        {
            "role": "assistant",
            "content": "Usually 60 to 100 beats per minute; fit people often sit lower.",
        },
    ],
    [
        *FOLLOW_UP,
        {
            "role": "assistant",
            "content": "Use a `with` block:\n\n```python\nwith open(path, encoding='utf-8') as f:"
            "\n    text = f.read()\n```\n\nThe file is closed when the block ends, even if "
            "reading raises an error.",
        },
    ],
    [
        *FOLLOW_UP,
        {"role": "assistant", "content": "Call `f.close()` at the end and hope nothing fails."},
    ],
]


def _demo_store(folder: Path) -> Store:
    store = open_store(f"sqlite:///{folder / 'browser.db'}")
    set_up_demo(store)
    extra = folder / "extra_answers.jsonl"
    extra.write_text(
        "".join(json.dumps({"messages": messages}) + "\n" for messages in EXTRA_ANSWERS),
        encoding="utf-8",
    )
    import_file(store, path=extra, project=DEMO_PROJECT.name, source="browser-test")
    seed_workspace(store)
    return store


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The demo workspace (with a ranking item and a multi-turn conversation), for the session."""
    store = _demo_store(tmp_path_factory.mktemp("browser"))
    yield store
    store.close()


@pytest.fixture(scope="session")
def server_url(demo_store: Store) -> Iterator[str]:
    """The URL of the real app serving `demo_store` on a free port of 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(demo_store), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a busy machine starts it slowly
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


# Per module, not per session: the sync API runs an event loop in the main thread while
# it is open, and a later test in the same worker may need that thread for asyncio.run.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (`make browser` installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where tests save screenshots for people to look at (not checked in)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def outside_requests() -> list[str]:
    """The URLs `page` tried to fetch from any host but the test server (all refused)."""
    return []


@pytest.fixture
def page_errors() -> list[str]:
    """Script errors and console errors (CSP violations among them) of `page`."""
    return []


@pytest.fixture
def page(
    browser: Browser, server_url: str, outside_requests: list[str], page_errors: list[str]
) -> Iterator[Page]:
    """A tab in a fresh browser context (no cookies) that may reach the test server only."""
    context: BrowserContext = browser.new_context(
        base_url=server_url, viewport={"width": 1280, "height": 900}
    )
    allowed = urlsplit(server_url).netloc

    def only_the_test_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == allowed:
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            page_errors.append(message.text)

    def script_error(error: PlaywrightError) -> None:
        page_errors.append(f"{error.name}: {error.message}")

    context.route("**/*", only_the_test_server)
    tab = context.new_page()
    tab.set_default_timeout(60_000)  # waits end when the page is ready, not at this
    tab.on("console", console)
    tab.on("pageerror", script_error)
    yield tab
    context.close()
