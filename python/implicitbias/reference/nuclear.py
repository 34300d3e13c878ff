"""Minimum nuclear-norm interpolation for matrix sensing / completion (docs/science.md, section 3).

* :func:`min_nuclear_norm` -- by semidefinite programming with cvxpy
  (optional dependency: ``pip install implicitbias[nuclear]``); the
  measurements are parsed by :func:`implicitbias._sensing.parse_sensing`, as
  for :class:`implicitbias.factorization.SensingOperator`.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._sensing import parse_sensing
from .._validation import check_vector


class InaccurateSolveWarning(RuntimeWarning):
    """A reference solve returned a solution its solver called inaccurate ("optimal_inaccurate")."""


# --------------------------------------------------------------------------
# minimum nuclear norm interpolation (matrix sensing / completion)
# --------------------------------------------------------------------------
def min_nuclear_norm(A, y, shape=None, *, solver: str | None = None, eps: float = 1e-8):
    """The minimum nuclear-norm matrix ``X`` with ``<A_i, X> = y_i`` for all i.

    ``A``: float array (n, d_out, d_in) of sensing matrices, or int array
    (n, 2) of (row, column) pairs (matrix completion; then ``shape`` is
    required). Solved as the semidefinite program
    ``min ||X||_*  s.t.  <A_i, X> = y_i`` by cvxpy with a bundled conic solver
    (``solver``: "CLARABEL" by default, "SCS" as fallback) to tolerance
    ``eps``. Returns ``X`` (d_out, d_in). Requires cvxpy (the ``nuclear`` and
    ``test`` extras install it). Bad measurements raise ``ValueError`` with
    the messages of :class:`implicitbias.factorization.SensingOperator`.
    When no solver reaches "optimal" and one returns "optimal_inaccurate", that
    solution is returned with an :class:`InaccurateSolveWarning`.
    """
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "min_nuclear_norm needs cvxpy: pip install 'implicitbias[nuclear]' (or pip install cvxpy)"
        ) from None
    kind, arr, (d_out, d_in) = parse_sensing(A, shape, name="A")
    n = arr.shape[0]
    yv = check_vector(y, "y", n)
    X = cp.Variable((d_out, d_in))
    if kind == "gaussian":
        Amat = arr.reshape(n, d_out * d_in)  # row i = A_i flattened row-major
        constraints = [Amat @ cp.vec(X, order="C") == yv]
    else:
        constraints = [X[arr[:, 0], arr[:, 1]] == yv]
    prob = cp.Problem(cp.Minimize(cp.normNuc(X)), constraints)
    return _solve(prob, X, solver, eps)


def _solve(prob, X, solver: str | None, eps: float) -> np.ndarray:
    """Solve ``prob`` for ``X`` by ``solver`` or CLARABEL then SCS (see :func:`min_nuclear_norm`).

    The first "optimal" solution is returned, else the first "optimal_inaccurate" one.
    """
    import cvxpy as cp

    solvers = [solver] if solver is not None else ["CLARABEL", "SCS"]
    last_error, fallback = None, None
    for name in solvers:
        if name not in cp.installed_solvers():
            continue
        try:
            with warnings.catch_warnings():  # "inaccurate" is reported through prob.status below
                warnings.simplefilter("ignore")
                if name == "CLARABEL":
                    prob.solve(solver=name, tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps)
                elif name == "SCS":
                    prob.solve(solver=name, eps=max(eps, 1e-8), max_iters=200_000)
                else:
                    prob.solve(solver=name)
        except cp.error.SolverError as exc:
            last_error = exc
            continue
        if X.value is None:
            continue
        if prob.status == "optimal":
            return np.array(X.value, dtype=np.float64)
        if prob.status == "optimal_inaccurate" and fallback is None:
            fallback = np.array(X.value, dtype=np.float64)
    if fallback is not None:
        warnings.warn("min_nuclear_norm: the solver reported 'optimal_inaccurate' (it stopped short of its "
                      f"tolerance eps={eps:g}); the solution may be off by more than eps", InaccurateSolveWarning,
                      stacklevel=3)
        return fallback
    raise RuntimeError(f"min_nuclear_norm: no solver succeeded (status {prob.status!r}; {last_error})")

