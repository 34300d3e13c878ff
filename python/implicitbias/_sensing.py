"""Parsing of matrix-sensing measurements, shared by the trainer and the references.

Measurements ``f_i = <A_i, E>`` of a ``(d_out, d_in)`` matrix ``E`` are given
either as dense sensing matrices (a float array ``(n, d_out, d_in)``) or as
entry sampling (an int array ``(n, 2)`` of (row, column) pairs, matrix
completion, which needs ``shape = (d_out, d_in)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_positive_int


def parse_sensing(A: Any, shape: Any = None, name: str = "A") -> tuple[str, np.ndarray, tuple[int, int]]:
    """Validate and classify measurements: returns ``(kind, arr, shape)``.

    * ``kind == "gaussian"``: ``arr`` is the float64, C-contiguous array
      ``(n, d_out, d_in)`` of sensing matrices (non-empty, finite); ``shape``,
      if given, must equal ``(d_out, d_in)``.
    * ``kind == "completion"``: ``arr`` is the int array ``(n, 2)`` of
      (row, column) pairs as given (non-empty, within ``shape``, which is
      required).

    ``shape`` is returned as ``(d_out, d_in)`` Python ints. Raises
    ``ValueError`` naming ``name`` (or ``shape``) for anything else.
    """
    try:
        arr = np.asarray(A)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array (n, d_out, d_in) or (n, 2): {exc}") from None
    if shape is not None and (not isinstance(shape, (tuple, list)) or len(shape) != 2):
        raise ValueError(f"shape must be a pair (d_out, d_in), got {shape!r}")
    if arr.ndim == 3 and np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating):
        arr = np.asarray(arr, dtype=np.float64)
        n, d_out, d_in = arr.shape
        if n == 0 or d_out == 0 or d_in == 0:
            raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
        if shape is not None and tuple(shape) != (d_out, d_in):
            raise ValueError(f"shape {tuple(shape)} does not match {name}'s matrices {(d_out, d_in)}")
        return "gaussian", np.ascontiguousarray(arr), (int(d_out), int(d_in))
    if arr.ndim == 2 and arr.shape[1] == 2 and np.issubdtype(arr.dtype, np.integer):
        if arr.shape[0] == 0:
            raise ValueError(f"{name} must contain at least one index pair")
        if shape is None:
            raise ValueError("shape (d_out, d_in) is required with entry sampling (index pairs)")
        d_out = check_positive_int(shape[0], "shape")
        d_in = check_positive_int(shape[1], "shape")
        rows, cols = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
        if rows.min() < 0 or rows.max() >= d_out or cols.min() < 0 or cols.max() >= d_in:
            raise ValueError(f"{name}: index pairs out of range for shape {(d_out, d_in)}")
        return "completion", arr, (d_out, d_in)
    raise ValueError(
        f"{name} must be a float array (n, d_out, d_in) of sensing matrices or an int array (n, 2) "
        f"of (row, column) pairs (or regression inputs X (n, d_in) with 2-D targets y (n, d_out)), "
        f"got shape {arr.shape} and dtype {arr.dtype}")
