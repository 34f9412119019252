"""The local stack and the emulators of Lambda's triggers: what a developer runs on a laptop.

A moto server and a throwaway Postgres, provisioned like AWS (``stack``, ``stack_state``,
``stack_record``), the function in a process of its own as Lambda runs it
(``function_process``, ``function_host``), the SQS event source mapping and the schedule that
invoke it (``event_source_mapping``, ``schedule``, ``local_run``), the ``login-etl stack`` and
``login-etl run`` commands (``commands``), and ``make test-sam-local``'s harness
(``sam_local``). Used by ``make run``, the tests and CI; never in production, and not part of
the Lambda artifact.

It may use the operator CLI (``login_etl_cli``: its argument parsing, target, key store and
the stack's record), never the other way round: its commands and its function process reach
the CLI through entry points (``pyproject.toml``).
"""
