from tests.fixtures.clients import db, device, http, token_for  # noqa: F401
from tests.fixtures.stack import stack  # noqa: F401
