r"""Standardising codes: per-dimension mean and scale, and the log-Jacobian it costs a density.

EM is run on :math:`u = (z - m) / s`, with the per-dimension mean :math:`m` and standard
deviation :math:`s` of the training codes, so that one ``reg_covar`` suits every dimension. A
density fitted to :math:`u` is a density of :math:`z` by the change of variables,

.. math::

    \log p_z(z) = \log p_u\bigl((z - m) / s\bigr) - \sum_j \log s_j,

and :attr:`Standardizer.log_jacobian_` is that last sum with its sign.
"""

from __future__ import annotations

import numpy as np

from gae_course.mixture import NotFittedError, check_X


class Standardizer:
    """Zero mean and unit variance per dimension, fitted on training codes.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (d,)
        ``u = (z - mean_) / scale_``. A dimension that never varies keeps scale 1 (it is left
        unscaled rather than divided by 0).
    log_jacobian_ : float
        ``-sum(log(scale_))``: add it to a log-density of ``u`` to get one of ``z``.
    """

    def fit(self, codes):
        """Fit on codes of shape (n_samples, d); returns self."""
        codes = check_X(codes, name="codes")
        std = codes.std(axis=0)
        self.mean_ = codes.mean(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        self.log_jacobian_ = -float(np.sum(np.log(self.scale_)))
        return self

    def _check_is_fitted(self):
        if not hasattr(self, "mean_"):
            raise NotFittedError("This Standardizer is not fitted yet: call fit(codes) first.")

    def transform(self, codes):
        """``(codes - mean_) / scale_``; ndarray of shape (n_samples, d)."""
        self._check_is_fitted()
        codes = check_X(codes, n_features=len(self.mean_), name="codes")
        return (codes - self.mean_) / self.scale_

    def inverse_transform(self, u):
        """``u * scale_ + mean_``; ndarray of shape (n_samples, d)."""
        self._check_is_fitted()
        return check_X(u, n_features=len(self.mean_), name="u") * self.scale_ + self.mean_


class Identity(Standardizer):
    """A standardiser that changes nothing (``ClassConditionalGMM(standardize=False)``)."""

    def fit(self, codes):
        codes = check_X(codes, name="codes")
        self.mean_, self.scale_ = np.zeros(codes.shape[1]), np.ones(codes.shape[1])
        self.log_jacobian_ = 0.0
        return self
