"""Schema-driven fuzzing of all four services (issue 5, "Also"): schemathesis generates valid and
invalid requests from each service's own OpenAPI document and sends them with a token of every
role and with none. No answer may be a 5xx, and every answer must match what the document
declares (status, content type, body schema).

Bounded for ``make test``: ``FUZZ_EXAMPLES`` examples per operation, role and mode, from a fixed
seed (pytest prints it in its header; set ``BWC_FUZZ_SEED`` to reproduce or vary a run).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bwc.auth import Role
from bwc.devstack.services import SERVICES
from bwc.devstack.stack import Stack
from tests.fixtures.clients import auth, mint
from tests.fixtures.fuzz import FUZZ_EXAMPLES, SEED

log = logging.getLogger(__name__)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ROLES: list[str | None] = [None, *(r.value for r in Role)]

# tus chunks are raw bytes, whatever the media type says.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@pytest.fixture(scope="module")
def fuzz_device(stack: Stack) -> str:
    """A registered device, so the device role's tus requests get past the registry."""
    device_id = f"cam-fuzz-{uuid.uuid4().hex[:6]}"
    response = httpx.post(f"{stack.url('ingest')}/api/v1/devices",
                          json={"device_id": device_id},
                          headers=auth(mint(stack, "admin", "admin-fuzz")))
    assert response.status_code == 201, response.text
    return device_id


def _fuzz_operation(operation: Any, base: str, headers: dict[str, str],
                    mode: GenerationMode, statuses: Counter[int]) -> None:
    @seed(SEED)
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICES)
def test_openapi_fuzz_no_5xx_and_answers_match_the_schema(
    stack: Stack, fuzz_device: str, service: str
) -> None:
    base = stack.url(service)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for role in ROLES:
        sub = fuzz_device if role == "device" else f"{role}-fuzz"
        headers = auth(mint(stack, role, sub)) if role else {}
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz_operation(operation, base, headers, mode, statuses)
                except Unsatisfiable:
                    pass  # nothing to make invalid: the operation takes no input
                except Exception as exc:  # collect all, so one run shows every finding
                    failures.append(f"[{role or 'no token'}, {mode.value}] "
                                    f"{operation.label}: {exc}")
    log.info("%s: responses by status %s", service, dict(sorted(statuses.items())))
    assert not failures, f"seed {SEED}:\n" + "\n\n".join(failures)
    assert statuses  # the fuzzer really sent requests
