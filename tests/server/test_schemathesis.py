"""API fuzzing with schemathesis against the live server's /openapi.json: no input may cause a 5xx.

Every operation gets positive (schema-valid) and negative (schema-violating)
cases. Beyond ``not_a_server_error`` the responses must conform to the
documented status codes, content types and schemas.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import LiveServer

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_no_generated_request_causes_a_server_error(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/stylize", "/v1/synthesize", "/v1/generate", "/v1/models"}
    before = _stylize_requests(server)
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                fuzz()
            except Unsatisfiable:
                # an operation without parameters (GET /healthz) has no schema to violate
                assert mode is GenerationMode.NEGATIVE, op.path
    assert server.client.get("/healthz").status_code == 200
    assert _stylize_requests(server) - before >= EXAMPLES  # the fuzzer really reached the server


def _stylize_requests(server: LiveServer) -> float:
    text = server.client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("stylenorm_requests_total{") and 'route="/v1/stylize"' in line
    )
