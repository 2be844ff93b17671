"""Fuzzing the API with schemathesis: every operation of /openapi.json, against a real uvicorn,
on SQLite and on PostGIS, each on a fresh seeded database of its own (the fuzzer writes), with
a write token and an admin token.

Fails on any 5xx, any status or content type the document does not declare for the
operation, and any answer that breaks the declared schema. The generation is derandomized
with a fixed seed and bounded (examples per operation and mode), so a run tests the same
cases each time and stays inside CI's time budget; the case counts are printed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from app.domain.tokens import Scope
from app.seed import seed as seed_database
from app.storage.database import Database
from tests.conftest import DATA_DIR, serve
from tests.store import StoreTokens as Tokens

SEED = 20261125
MINIMUM_CASES = 1000  # per database
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 15}  # per operation
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def run_operation(
    operation: Any, mode: GenerationMode, call: Callable[[Any], None]
) -> tuple[int, str | None]:
    """Up to ``EXAMPLES[mode]`` generated cases of one operation: (cases run, first failure)."""
    count = 0

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: report the first failure as found
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        nonlocal count
        count += 1
        call(case)

    try:
        fuzz()
    except Unsatisfiable:
        pass  # e.g. no negative case exists for an operation without parameters
    except (FailureGroup, Exception) as failure:  # a FailureGroup is not an Exception
        return count, f"{operation.label} [{mode.value}]: {failure}"
    return count, None


def test_fuzz_every_operation(
    empty_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a seeded database of its own: the fuzzer writes."""
    seed_database(Database(empty_engine), DATA_DIR)
    backend = "postgis" if empty_engine.dialect.name == "postgresql" else "sqlite"
    tokens = Tokens(empty_engine)
    token = {
        Scope.WRITE.value: tokens.create("fuzz-desk", Scope.WRITE),
        Scope.ADMIN.value: tokens.create("fuzz-chief", Scope.ADMIN),
    }
    session = requests.Session()
    started = time.monotonic()
    log = tmp_path / "uvicorn.log"
    with serve(empty_engine, backend, log=log) as live:
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        cases, failures, operations = 0, [], 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # Admin operations get the admin token, the others the write token (which an
            # admin operation must refuse with a declared 403: covered by the write token's
            # negative cases and test_protocol).
            needed = operation.definition.raw.get("x-token-scope", Scope.WRITE.value)
            headers = {"Authorization": f"Bearer {token[needed]}"}

            def call(case: Any, headers: dict[str, str] = headers) -> None:
                case.call_and_validate(session=session, headers=headers, checks=CHECKS, timeout=60)

            for mode in EXAMPLES:
                count, failure = run_operation(operation, mode, call)
                cases += count
                if failure is not None:
                    failures.append(failure)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nschemathesis on {backend}: {cases} cases over {operations} operations in "
            f"{elapsed:.0f} s, {len(failures)} failing operations"
        )
    errors = sorted(set(re.findall(r"^\w[\w.]*(?:Error|Exception): .*$", log.read_text(), re.M)))
    assert not failures, "\n\n".join([*failures, "The server logged:", *errors])
    assert cases >= MINIMUM_CASES, f"only {cases} cases on {backend}"
