from tests.api.conftest import pg  # noqa: F401
