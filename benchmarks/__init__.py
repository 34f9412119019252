"""The benchmarks: what measures the function, run by developers, never in production.

``make bench`` (``benchmark``, with ``floor``, ``probe``, ``typical_handler``),
``make bench-instructions`` (``instructions``), ``make bench-ledger`` (``ledger``, with
``ledger_state`` and ``ledger_prune``) and ``make bench-refusals`` (``refusals``) run
``python -m benchmarks.<name>`` from the repository root (``phases``: by hand). Not
installed, not in the Lambda artifact; it may use the local stack and the CLI.
"""
