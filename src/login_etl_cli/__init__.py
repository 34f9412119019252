"""The operator CLI, ``login-etl``: what on-call runs against a real stack (AWS and Postgres).

Run by people, in production: keys and rotation, unmask and rekey (audited), the dead-letter
queue and its redrive, the report, the database's roles and grants. Every command acts on the
stack the environment names, else on the local one ``login-etl stack up`` left running.
Not part of the Lambda artifact (the SAM build ships ``login_etl`` only).

Dependency rule (``tests/test_layout.py``): this package uses ``login_etl_local`` only to find
a running local stack (``login_etl_local.stack_record``); the ``stack`` and ``run`` commands
live there and are registered lazily (``commands/registry.py``).
"""
