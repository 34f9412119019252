"""``python -m login_etl_cli``: the ``login-etl`` console script without installing it."""

from __future__ import annotations

import sys

from login_etl_cli.main import main

sys.exit(main())
