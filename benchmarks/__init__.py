"""The benchmarks: what ``make bench``, ``bench-instructions``, ``bench-ledger`` and
``bench-refusals`` run to measure the function (``python -m benchmarks.<name>`` from the
repository root). Measuring only: never in production, not installed, not in the artifact.
"""
