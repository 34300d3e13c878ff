"""The dual potentials ``psi`` of the diagonal-network flow limit, one per model.

Coordinatewise, with ``a = alpha^(2-L)`` and ``p = L/(L-2)`` (derivation in
:mod:`.sparse`): ``psi(s) = 2 alpha^2 cosh(s)`` (signed, L = 2),
``alpha^2 exp(s)`` (nonnegative, L = 2),
``[(a - s)^(1-p) + (a + s)^(1-p)] / (p - 1)`` (signed, L > 2) and
``(a - s)^(1-p) / (p - 1)`` (nonnegative, L > 2); ``x = psi'(s)``.

Each class offers what the Newton solver of :mod:`._dual_newton` needs:
``state`` (from ``s = A^T lam`` in double-double), ``trial``, ``in_domain``,
``x``, ``hess`` (``psi''``), ``max_step`` (distance to the domain's boundary
and the fraction of it to take) and ``dpsi`` (``psi(s + t ds) - psi(s)``
without cancellation).
"""

from __future__ import annotations

import numpy as np

from ._dual_newton import _two_sum

_EXP_CAP = 600.0  # keep log(alpha^2) + |s| below this: no overflow anywhere


class _ExpSigned:
    """signed, L = 2: psi(s) = 2 alpha^2 cosh(s), x = 2 alpha^2 sinh(s)."""

    def __init__(self, alpha):
        self.la = 2.0 * np.log(alpha)  # log(alpha^2)

    def state(self, s_hi, s_lo):
        return s_hi + s_lo

    def trial(self, s, ds, t):
        return s + t * ds

    @staticmethod
    def _sinh2(s, la):  # 2 alpha^2 sinh(s), accurate and overflow-free
        out = np.empty_like(s)
        sm = np.abs(s) < 1.0
        out[sm] = 2.0 * np.exp(la[sm]) * np.sinh(s[sm])
        bg = ~sm
        a = np.abs(s[bg])
        out[bg] = np.sign(s[bg]) * (np.exp(la[bg] + a) - np.exp(la[bg] - a))
        return out

    def in_domain(self, s):
        return bool(np.all(np.abs(s) + self.la <= _EXP_CAP + 1.0))

    @staticmethod
    def _psi(s, la):  # 2 alpha^2 cosh(s)
        a = np.abs(s)
        return np.exp(la + a) + np.exp(la - a)

    def x(self, s):
        return self._sinh2(s, self.la)

    def hess(self, s):
        return self._psi(s, self.la)

    def max_step(self, s, ds):
        bound = _EXP_CAP - self.la
        with np.errstate(divide="ignore", invalid="ignore"):
            t_up = np.where(ds > 0, np.maximum(bound - s, 0.0) / ds, np.inf)
            t_dn = np.where(ds < 0, np.maximum(bound + s, 0.0) / -ds, np.inf)
        return float(min(t_up.min(), t_dn.min())), 1.0

    def dpsi(self, s, ds, t):
        """psi(s + t ds) - psi(s) per coordinate, without cancellation, and
        the size of the terms it was computed from (for rounding estimates)."""
        step = t * ds
        half = 0.5 * step
        la = self.la
        out = np.empty_like(s)
        sm = np.abs(half) < 1.0
        # cosh(b) - cosh(a) = 2 sinh((a+b)/2) sinh((b-a)/2)
        out[sm] = self._sinh2(s[sm] + half[sm], la[sm]) * 2.0 * np.sinh(half[sm])
        bg = ~sm
        out[bg] = self._psi(s[bg] + step[bg], la[bg]) - self._psi(s[bg], la[bg])
        return out, np.abs(out)


class _ExpNonneg:
    """nonnegative, L = 2: psi(s) = alpha^2 exp(s), x = alpha^2 exp(s)."""

    def __init__(self, alpha):
        self.la = 2.0 * np.log(alpha)

    def state(self, s_hi, s_lo):
        return s_hi + s_lo

    def trial(self, s, ds, t):
        return s + t * ds

    def in_domain(self, s):
        return bool(np.all(s + self.la <= _EXP_CAP + 1.0))

    def x(self, s):
        return np.exp(self.la + s)

    def hess(self, s):
        return np.exp(self.la + s)

    def max_step(self, s, ds):
        bound = _EXP_CAP - self.la
        with np.errstate(divide="ignore", invalid="ignore"):
            t_up = np.where(ds > 0, np.maximum(bound - s, 0.0) / ds, np.inf)
        return float(t_up.min()), 1.0

    def dpsi(self, s, ds, t):
        step = t * ds
        out = np.empty_like(s)
        sm = np.abs(step) < 1.0
        out[sm] = np.exp(self.la[sm] + s[sm]) * np.expm1(step[sm])
        bg = ~sm
        out[bg] = np.exp(self.la[bg] + s[bg] + step[bg]) - np.exp(self.la[bg] + s[bg])
        return out, np.abs(out)


def _pow_diff(w, dw, q):
    """(w + dw)^q - w^q for w > 0, w + dw > 0, without cancellation."""
    return w**q * np.expm1(q * np.log1p(dw / w))


class _PowSigned:
    """signed, L > 2: with a = alpha^(2-L), p = L/(L-2), on |s| < a,
    psi(s) = [(a - s)^(1-p) + (a + s)^(1-p)] / (p - 1),
    x = psi'(s) = (a - s)^(-p) - (a + s)^(-p).
    State: (s, a - s, a + s), the last two accurate to full relative precision.
    """

    def __init__(self, alpha, depth):
        self.a = alpha ** (2.0 - depth)
        self.p = depth / (depth - 2.0)

    def state(self, s_hi, s_lo):
        d, e = _two_sum(self.a, -s_hi)
        wu = d + (e - s_lo)
        d, e = _two_sum(self.a, s_hi)
        wv = d + (e + s_lo)
        return s_hi + s_lo, wu, wv

    def trial(self, st, ds, t):
        s, wu, wv = st
        step = t * ds
        return s + step, wu - step, wv + step

    def in_domain(self, st):
        _, wu, wv = st
        return bool(np.all(wu > 0) and np.all(wv > 0))

    def x(self, st):
        s, wu, wv = st
        # wv^-p * ((wv/wu)^p - 1), with wv / wu = 1 + 2 s / wu
        ratio = 2.0 * s / wu
        near = np.abs(ratio) < 0.5
        log_ratio = np.empty_like(s)
        log_ratio[near] = np.log1p(ratio[near])
        log_ratio[~near] = np.log(wv[~near]) - np.log(wu[~near])
        return wv ** (-self.p) * np.expm1(self.p * log_ratio)

    def hess(self, st):
        _, wu, wv = st
        return self.p * (wu ** (-self.p - 1.0) + wv ** (-self.p - 1.0))

    def max_step(self, st, ds):
        _, wu, wv = st
        with np.errstate(divide="ignore", invalid="ignore"):
            t_u = np.where(ds > 0, wu / ds, np.inf)
            t_v = np.where(ds < 0, wv / -ds, np.inf)
        return float(min(t_u.min(), t_v.min())), 0.99

    def dpsi(self, st, ds, t):
        _, wu, wv = st
        step = t * ds
        q = 1.0 - self.p
        du = _pow_diff(wu, -step, q)
        dv = _pow_diff(wv, step, q)
        return (du + dv) / (self.p - 1.0), (np.abs(du) + np.abs(dv)) / (self.p - 1.0)


class _PowNonneg:
    """nonnegative, L > 2: psi(s) = (a - s)^(1-p) / (p - 1) on s < a,
    x = (a - s)^(-p). State: (s, a - s)."""

    def __init__(self, alpha, depth):
        self.a = alpha ** (2.0 - depth)
        self.p = depth / (depth - 2.0)

    def state(self, s_hi, s_lo):
        d, e = _two_sum(self.a, -s_hi)
        return s_hi + s_lo, d + (e - s_lo)

    def trial(self, st, ds, t):
        s, w = st
        step = t * ds
        return s + step, w - step

    def in_domain(self, st):
        return bool(np.all(st[1] > 0))

    def x(self, st):
        return st[1] ** (-self.p)

    def hess(self, st):
        return self.p * st[1] ** (-self.p - 1.0)

    def max_step(self, st, ds):
        w = st[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_w = np.where(ds > 0, w / ds, np.inf)
        return float(t_w.min()), 0.99

    def dpsi(self, st, ds, t):
        out = _pow_diff(st[1], -t * ds, 1.0 - self.p) / (self.p - 1.0)
        return out, np.abs(out)


def _potential(alpha: np.ndarray, depth: int, nonnegative: bool):
    """The potential of the model ``x = u^L - v^L`` (or ``x = u^L``), ``L = depth``."""
    if depth == 2:
        return _ExpNonneg(alpha) if nonnegative else _ExpSigned(alpha)
    return _PowNonneg(alpha, depth) if nonnegative else _PowSigned(alpha, depth)
