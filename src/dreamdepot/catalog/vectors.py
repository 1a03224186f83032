"""How a vector is written for pgvector (shared by the copy into PostgreSQL and the
embedding stage)."""

from __future__ import annotations

import numpy as np


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form of a vector.

    >>> vector_literal(np.array([0.5, -1.0]))
    '[0.5,-1]'
    """
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(v, np.float32).tolist()) + "]"
