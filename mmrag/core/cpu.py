"""CPU threading choices that must be made before torch is imported."""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_omp_threads() -> bool:
    """Let torch's idle OpenMP threads sleep instead of spinning, unless the user chose OMP_WAIT_POLICY.

    For indexing: the encoder shares the cores with decoding, thumbnails, gRPC writes and the local Weaviate, and
    spinning OpenMP threads take their CPU (measured on 2 cores: end-to-end/bare encoder 0.49-0.89 spinning,
    0.83-0.95 passive; bench/index_throughput.py). Not for generation, whose many small ops pay for each wake-up.
    Returns False when it is too late (torch already imported, so OpenMP read its settings).
    """
    if "torch" in sys.modules:
        return False
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
    return True
