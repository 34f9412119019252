"""What a batch costs a Lambda user: GB-seconds per million messages, from measured CPU time.

The model (stated wherever a figure from it is shown):

* an invocation's duration = the function's CPU time ÷ its vCPU share + Postgres's CPU time.
  The second term is the time the function waits on Postgres: a lower bound, since the network's
  latency (loopback here) is left out;
* vCPU share = min(1, memory / 1,769 MB): Lambda gives CPU in proportion to memory, one full
  vCPU at 1,769 MB; the function is single-threaded, so more than one vCPU buys nothing;
* each invocation's duration is rounded up to Lambda's billing granularity, 1 ms;
* GB-seconds = billed duration x memory / 1,024 MB.

Init (cold start) is not in these figures: it is measured apart, in fresh processes.
"""

from __future__ import annotations

import math

FULL_VCPU_MB = 1_769
MEMORY_SIZES_MB = (512, 1_769)
BILLING_MS = 1
ASSUMPTIONS = (
    "cost model: duration = function CPU / vCPU share + Postgres CPU (the wait on Postgres,"
    f" a lower bound: no network latency); vCPU share = min(1, memory / {FULL_VCPU_MB:,} MB);"
    f" each invocation rounded up to {BILLING_MS} ms; GB-s = duration x memory / 1,024 MB;"
    " init not included"
)


def vcpu_share(memory_mb: int) -> float:
    """The share of one vCPU Lambda gives a function of this memory size."""
    return min(1.0, memory_mb / FULL_VCPU_MB)


def billed_ms(function_cpu_s: float, postgres_cpu_s: float, memory_mb: int) -> int:
    """One invocation's billed duration, in ms: the model's duration, rounded up to 1 ms."""
    duration_ms = (function_cpu_s / vcpu_share(memory_mb) + postgres_cpu_s) * 1000
    # A float a hair above a whole number (0.1 + 0.2) must not be billed a millisecond more.
    return BILLING_MS * math.ceil(round(duration_ms, 9) / BILLING_MS)


def gb_seconds(billed: int, memory_mb: int) -> float:
    """GB-seconds of one invocation billed ``billed`` ms."""
    return billed / 1000 * memory_mb / 1024


def gb_s_per_million(
    function_cpu_s: float, postgres_cpu_s: float, messages: int, memory_mb: int
) -> float:
    """GB-seconds per million messages, for one invocation of ``messages`` messages."""
    billed = billed_ms(function_cpu_s, postgres_cpu_s, memory_mb)
    return gb_seconds(billed, memory_mb) * 1_000_000 / messages


def cpu_ms_per_thousand(cpu_s: float, messages: int) -> float:
    """CPU-ms per 1,000 messages, for a call of ``messages`` messages that took ``cpu_s``."""
    return cpu_s * 1000 * 1000 / messages
