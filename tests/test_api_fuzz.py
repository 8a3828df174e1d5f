"""The JSON API fuzzed from its own OpenAPI document (schemathesis): no input makes a server
error, and every answer's status, content type and body are the ones documented.

A project with items, an admin and an expert, each with an API token; every operation is
called with inputs generated from its schema (ids past 64 bits, lone surrogates, bodies
of the wrong shape, ...), bounded in examples so the suite keeps its time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tutelage.store import open_store
from tutelage.web import ServerSettings, create_app
from tutelage.workspace.accounts import create_api_token
from workspace_fixtures import make_world

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 12  # per operation and token: about 20 s a run on a quiet machine


@pytest.fixture
def tokens(store_url: str, tmp_path: Path) -> Iterator[tuple[object, dict[str, str]]]:
    store = open_store(store_url)
    world = make_world(store, tmp_path)
    with store.session() as session:
        tokens = {
            "admin": create_api_token(session, user_id=world.admin.user_id),
            "expert": create_api_token(session, user_id=world.experts[0].user_id),
        }
    yield create_app(store, ServerSettings(db=store_url)), tokens
    store.close()


@pytest.fixture
def api_schema(tokens: tuple[object, dict[str, str]]) -> object:
    app, _ = tokens
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _call(case: schemathesis.Case, tokens: tuple[object, dict[str, str]], who: str) -> None:
    _, secrets = tokens
    case.call_and_validate(headers={"Authorization": f"Bearer {secrets[who]}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_as_an_admin_no_input_is_a_server_error_and_every_answer_is_documented(
    case: schemathesis.Case, tokens: tuple[object, dict[str, str]]
) -> None:
    _call(case, tokens, "admin")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_as_an_expert_no_input_is_a_server_error_and_every_answer_is_documented(
    case: schemathesis.Case, tokens: tuple[object, dict[str, str]]
) -> None:
    _call(case, tokens, "expert")
