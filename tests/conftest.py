from tests.fixtures.clients import db, device, http, token_for  # noqa: F401
from tests.fixtures.stack import stack  # noqa: F401


def pytest_report_header() -> str:
    from tests.fixtures.fuzz import FUZZ_EXAMPLES, SEED

    return f"fuzz: seed {SEED} (BWC_FUZZ_SEED), {FUZZ_EXAMPLES} examples (BWC_FUZZ_EXAMPLES)"
