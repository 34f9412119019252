"""Generated login messages that look like the real queue: same shapes, fixed seed.

Mimics the take-home data (uuid user ids, dotted app versions in three shapes, ios/android,
IPv4 from every range, ~29 % null locales, SSN-shaped device ids) and adds what a real
stream has and the sample lacks: repeated devices and IPs, and some malformed messages.

Part of the CLI because ``login-etl seed`` sends them to any target (a staging queue in AWS
too); ``login-etl run``, the tests and the benchmarks use them from here.
"""

from __future__ import annotations

import json
import random
import uuid

LOCALES = ["RU", "PH", "ID", "BR", "US", "CN", "FR", "DE", "IN", "NG", "MX", "JP", "PL", "SE"]


def login(
    rng: random.Random, ips: list[str], devices: list[str], repeat_ratio: float
) -> dict[str, object]:
    """One valid login; with probability ``repeat_ratio`` the IP/device is one seen before."""
    if ips and rng.random() < repeat_ratio:
        ip = rng.choice(ips)
    else:
        ip = ".".join(str(rng.randint(0, 255)) for _ in range(4))
        ips.append(ip)
    if devices and rng.random() < repeat_ratio:
        device_id = rng.choice(devices)
    else:
        device_id = f"{rng.randint(0, 999):03d}-{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}"
        devices.append(device_id)
    shape = rng.random()
    if shape < 0.45:
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"
    elif shape < 0.81:
        version = f"{rng.randint(0, 9)}.{rng.randint(10, 99)}"
    else:
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 9)}"
    return {
        "user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "app_version": version,
        "device_type": rng.choice(["ios", "android"]),
        "ip": ip,
        "locale": None if rng.random() < 0.29 else rng.choice(LOCALES),
        "device_id": device_id,
    }


def malformed(rng: random.Random, valid: dict[str, object]) -> str:
    """A message the pipeline must reject, of one of the kinds seen in real streams."""
    kind = rng.randrange(5)
    if kind == 0:
        return json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})
    if kind == 1:
        return "user logged in at " + str(valid["ip"])[:3]
    if kind == 2:
        return json.dumps({**valid, "app_version": 230})
    if kind == 3:
        return json.dumps({**valid, "ip": "999.1.1.1"})
    return json.dumps({k: v for k, v in valid.items() if k != "device_id"})


def generate(
    count: int, seed: int = 20221201, malformed_ratio: float = 0.02, repeat_ratio: float = 0.2
) -> list[str]:
    """``count`` message bodies, deterministic for a given seed."""
    return [body for body, _ in generate_labelled(count, seed, malformed_ratio, repeat_ratio)]


def generate_labelled(
    count: int, seed: int = 20221201, malformed_ratio: float = 0.02, repeat_ratio: float = 0.2
) -> list[tuple[str, bool]]:
    """Like ``generate``, each body with whether it was made valid (known by construction)."""
    rng = random.Random(seed)
    ips: list[str] = []
    devices: list[str] = []
    bodies = []
    for _ in range(count):
        valid = login(rng, ips, devices, repeat_ratio)
        if rng.random() < malformed_ratio:
            bodies.append((malformed(rng, valid), False))
        else:
            bodies.append((json.dumps(valid), True))
    return bodies
