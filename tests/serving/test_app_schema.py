"""Property-based run of every documented operation against a live server (schemathesis).

Requests (paths, headers, bodies) are generated from ``/openapi.json``: valid ones
(positive) and deliberately invalid ones (negative). No response may be a server error,
and each must match the documented status codes, content types and schemas.

Operations are driven one by one with Hypothesis (``as_strategy``) rather than through
schemathesis' pytest plugin, whose node renaming does not work with pytest 9.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

if TYPE_CHECKING:
    from conftest import LiveServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


KEY = "module-key-123"  # conftest.MODULE_API_KEY (conftest is not importable here)


@pytest.mark.e2e
@pytest.mark.parametrize("keys", ["open", "keyed"])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_answers_as_documented(
    request: pytest.FixtureRequest, mode: str, keys: str
) -> None:
    server: LiveServer = request.getfixturevalue(
        "module_server" if keys == "open" else "keyed_module_server"
    )
    headers = {"X-API-Key": KEY} if keys == "keyed" else {}
    with server.client(headers=headers) as client:  # the key is taken: no run of 401s
        assert client.get("/v1/models").status_code == 200
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=headers)
    generation = schemathesis.GenerationMode(mode)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation))
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS, headers=headers or None)

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid (no parameters, or free-form text)
            continue
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
