"""The operator CLI, ``login-etl``: what on-call runs against a real stack (AWS and Postgres).

Run by people, in production: keys and rotation, unmask and rekey (audited), the dead-letter
queue and its redrive, the report, the database's roles and grants. Every command acts on the
stack the environment names, else on the local one ``login-etl stack up`` left running.
Not part of the Lambda artifact (the SAM build ships ``login_etl`` only).

Dependency rule (``tests/test_layout.py``): this package imports nothing of ``login_etl_local``.
It reads the local stack's record itself (``local_stack``); the ``stack`` and ``run`` commands,
and the function run on this machine for ``dlq redrive``, plug in through entry points
(``commands/registry.py``, ``invocation.py``).
"""
