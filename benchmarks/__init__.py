"""The benchmarks: what measures the function, run by developers, never in production.

``make bench`` (``benchmark``, with ``floor``, ``typical_handler``, the clocks ``cpu``, the
cost model ``cost``, the 6 MB batch ``payload``, ``startup`` and ``probe`` in fresh
interpreters, ``stats``, ``report``),
``make bench-instructions`` (``instructions``), ``make bench-ledger`` (``ledger``, with
``ledger_state`` and ``ledger_prune``) and ``make bench-refusals`` (``refusals``) run
``python -m benchmarks.<name>`` from the repository root (``phases``: by hand). Not
installed, not in the Lambda artifact; it may use the local stack and the CLI.
"""
