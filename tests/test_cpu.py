"""The OpenMP wait policy `mmrag index` picks: only before torch loads, never over the user's own choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
from mmrag.core.cpu import passive_omp_threads
if sys.argv[1] == "late":
    import torch
print(passive_omp_threads(), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize(
    ("when", "user", "expected"),
    [("early", None, "True PASSIVE"), ("early", "ACTIVE", "True ACTIVE"), ("late", None, "False None")],
)
def test_passive_wait_policy(when: str, user: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": user} if user else {})
    result = subprocess.run([sys.executable, "-c", PROBE, when], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected
