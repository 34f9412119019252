"""Hypothesis strategies for valid logins, shared by the unit and integration tiers."""

from __future__ import annotations

from hypothesis import strategies as st

valid_logins = st.fixed_dictionaries(
    {
        "user_id": st.text(min_size=1, max_size=128).filter(lambda s: "\x00" not in s),
        "app_version": st.tuples(*[st.integers(0, 999)] * 3).map(lambda t: ".".join(map(str, t))),
        "device_type": st.sampled_from(["ios", "android"]),
        "ip": st.ip_addresses(v=4).map(str),
        "locale": st.none() | st.text(min_size=1, max_size=32).filter(lambda s: "\x00" not in s),
        "device_id": st.from_regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", fullmatch=True),
    }
)
