"""Exact reference solutions for the limits the simulations converge to.

Everything here is pure numpy/scipy (cvxpy for the nuclear norm) and
independent of the compiled core, so it can serve as the ground truth the
simulations are compared against. Where each public name lives:

* :mod:`.sparse` -- diagonal linear networks and sparse recovery
  (docs/science.md, section 1):

  - :func:`basis_pursuit` -- the minimum (weighted) l1-norm interpolator
    ``min sum_i w_i |x_i| s.t. A x = y``, by linear programming (HiGHS),
    with a least-squares polish on the support.
  - :func:`hyperbolic_entropy` -- the depth-2 implicit regularizer
    ``Q_alpha(x) = sum_i [x_i asinh(x_i / (2 alpha_i^2)) - sqrt(x_i^2 + 4 alpha_i^4)]``.
  - :func:`diagonal_flow_limit` -- the limit of plain gradient flow on the
    diagonal network ``x = u^L - v^L`` (or ``x = u^L``) from ``u = v = alpha``,
    by Newton's method on a smooth strictly convex dual problem (solver in
    :mod:`._dual_newton`, dual potentials in :mod:`._potentials`).

* :mod:`.saddles` -- the vanishing-initialization limit of the depth-2 diagonal flow
  (docs/science.md, section 1.10):

  - :func:`saddle_sequence` / :class:`SaddleSequence` -- the saddle-to-saddle process: jump
    times in ``tau = 2 t / log(1/alpha)``, the saddles (sign-constrained least squares on the
    active set), ``nu`` at each jump; the last saddle is basis pursuit.

* :mod:`.margin` -- max-margin classifiers (docs/science.md, section 2):

  - :func:`max_margin` / :class:`MaxMargin` -- the l2 / l_inf / l1 max-margin
    ``max_{||w|| <= 1} min_i y_i <w, x_i>`` of a bias-free linear classifier
    (SVM by least-distance programming, LPs by HiGHS).
  - :func:`diagonal_max_margin` / :class:`DiagonalMaxMargin` -- the
    predictor-level max-margin LPs for the diagonal network ``<u^2 - v^2, x>``.

* :mod:`.nuclear` -- deep matrix factorization (docs/science.md, section 3):

  - :func:`min_nuclear_norm` -- the minimum nuclear-norm interpolator
    ``min ||X||_* s.t. <A_i, X> = y_i`` of matrix sensing / completion, by
    semidefinite programming with cvxpy (optional dependency:
    ``pip install implicitbias[nuclear]``).

Conventions (docs/science.md): loss ``0.5 * ||A x - y||^2``, residual
``r = A x - y``, ``g = A^T r``.
"""

from __future__ import annotations

from .margin import DiagonalMaxMargin, MaxMargin, diagonal_max_margin, max_margin
from .nuclear import InaccurateSolveWarning, min_nuclear_norm
from .saddles import SaddleSequence, saddle_sequence
from .sparse import basis_pursuit, diagonal_flow_limit, hyperbolic_entropy

__all__ = [
    "DiagonalMaxMargin",
    "InaccurateSolveWarning",
    "MaxMargin",
    "SaddleSequence",
    "basis_pursuit",
    "diagonal_flow_limit",
    "diagonal_max_margin",
    "hyperbolic_entropy",
    "max_margin",
    "min_nuclear_norm",
    "saddle_sequence",
]
