"""The local stack and the emulators of Lambda's triggers: what a developer runs on a laptop.

A moto server and a throwaway Postgres, provisioned like AWS (``stack``, ``stack_state``,
``stack_record``), the SQS event source mapping and the schedule that call the real handler
(``event_source_mapping``, ``schedule``, ``local_run``), the ``login-etl stack`` and
``login-etl run`` commands (``commands``), and ``make test-sam-local``'s harness
(``sam_local``). Used by ``make run``, the tests and CI; never in production, and not part of
the Lambda artifact.

It may use the operator CLI (``login_etl_cli``: its argument parsing, target and key store),
never the other way round, except ``stack_record``, which is how the CLI finds a stack.
"""
