from tests.api.conftest import org_pki, pg  # noqa: F401
from tests.flows.conftest import pki_sqlite, pki_sqlite_template  # noqa: F401
