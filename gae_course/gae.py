r"""Gaussian Auto Embeddings: one Gaussian mixture per class in an autoencoder's code space.

A trained autoencoder maps an image :math:`x` to a code :math:`z = f(x)`. For every class
:math:`c` a Gaussian mixture with :math:`K` components is fitted by EM to the codes of that
class's training images; the class prior :math:`\pi_c` is the class frequency:

.. math::

    p(z \mid c) = \sum_{k=1}^{K} w_{ck} \, \mathcal N(z \mid \mu_{ck}, \Sigma_{ck}),
    \qquad \pi_c = n_c / n.

**Standardisation.** EM is run on standardised codes (:mod:`gae_course.standardize`), so that
one ``reg_covar`` suits every code dimension; densities are reported in the original code
space with the change of variables' log-Jacobian.

**Classification** is Bayes' rule:

.. math::

    p(c \mid z) = \frac{\pi_c \, p(z \mid c)}{\sum_{c'} \pi_{c'} \, p(z \mid c')},

computed in log space with log-sum-exp; :meth:`ClassConditionalGMM.predict` takes its argmax
(the highest class likelihood when the classes are balanced). The same sum is the marginal
density :math:`p(z) = \sum_c \pi_c p(z \mid c)` (:meth:`~ClassConditionalGMM.score_samples`).

**"None of these".** A code whose best class likelihood :math:`\max_c \log p(z \mid c)` is
below a threshold gets no class. The threshold is the ``quantile`` of that score over the
training codes, so a chosen fraction of training images (1% by default) would be rejected.

**How alike two classes are.** The KL divergence between two mixtures has no closed form; it is
estimated by Monte Carlo from :math:`n` draws :math:`z_i \sim p(\cdot \mid a)`:

.. math::

    \mathrm{KL}(p_a \,\|\, p_b) = \mathbb E_{z \sim p_a}\big[\log p(z \mid a) - \log p(z \mid b)\big]
    \approx \frac1n \sum_{i=1}^n \big[\log p(z_i \mid a) - \log p(z_i \mid b)\big],

an unbiased estimate with standard error :math:`\hat\sigma / \sqrt n`, where :math:`\hat\sigma`
is the sample standard deviation of the differences. KL is unchanged by the (shared, invertible)
standardisation, so it is computed on :math:`u` (:func:`kl_matrix`).

:class:`ClassConditionalGMM` is NumPy only. :class:`GaussianAutoEmbeddings` adds an
autoencoder (torch, imported only when used) to go from images to codes and back.
"""

from __future__ import annotations

import numpy as np

from gae_course import _blocks
from gae_course.mixture import GaussianMixture, NotFittedError, check_X, logsumexp
from gae_course.standardize import Identity, Standardizer


class ClassConditionalGMM:
    """One Gaussian mixture per class, on (optionally standardised) codes.

    Parameters
    ----------
    n_components : int
        Components per class.
    covariance_type : {'full', 'diag', 'spherical'}
    reg_covar : float
        Added to the diagonal of every covariance, in the standardised space.
    standardize : bool
        Fit on codes scaled to zero mean and unit variance per dimension (train statistics).
    fit_prior : bool
        Class priors from class frequencies; if False, uniform priors.
    max_iter, tol, n_init, init_params
        Passed to each :class:`gae_course.mixture.GaussianMixture`.
    random_state : int or None
        Seeds the EM initialisation of every class (each class gets its own child seed).

    Attributes
    ----------
    classes_ : ndarray of shape (C,)
        The labels seen in ``fit``, sorted.
    class_prior_ : ndarray of shape (C,)
    gmms_ : list of GaussianMixture, length C
        Fitted in the standardised space.
    standardizer_ : gae_course.standardize.Standardizer
        ``u = standardizer_.transform(z)``; its ``log_jacobian_`` turns densities of u into
        densities of z (an identity when ``standardize`` is off).
    threshold_ : float
        Set by :meth:`fit_threshold`.
    """

    def __init__(
        self,
        n_components=6,
        *,
        covariance_type="full",
        reg_covar=1e-2,
        standardize=True,
        fit_prior=True,
        max_iter=300,
        tol=1e-3,
        n_init=1,
        init_params="kmeans",
        random_state=0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.standardize = standardize
        self.fit_prior = fit_prior
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state

    def __repr__(self):
        return (
            f"ClassConditionalGMM(n_components={self.n_components}, "
            f"covariance_type={self.covariance_type!r}, reg_covar={self.reg_covar}, "
            f"standardize={self.standardize})"
        )

    # -- fitting --------------------------------------------------------------------------

    def _mixture(self, n_components, seed):
        return GaussianMixture(
            n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            tol=self.tol,
            n_init=self.n_init,
            init_params=self.init_params,
            random_state=seed,
        )

    def fit(self, codes, labels):
        """Fit one mixture per class on its codes, the class priors and the standardisation.

        Parameters
        ----------
        codes : ndarray of shape (n_samples, d)
        labels : ndarray of shape (n_samples,)

        Returns
        -------
        self
        """
        codes = check_X(codes, name="codes")
        labels = np.asarray(labels)
        if labels.shape != (len(codes),):
            raise ValueError(
                f"labels must have shape (n_samples,) = ({len(codes)},); got {labels.shape}."
            )
        if len(codes) == 0:
            raise ValueError("codes is empty: there is nothing to fit.")
        classes, counts = np.unique(labels, return_counts=True)
        for label, count in zip(classes, counts):
            if count < self.n_components:
                raise ValueError(
                    f"class {label!r} has {count} codes, fewer than n_components="
                    f"{self.n_components}; use fewer components or more data."
                )
        standardizer = (Standardizer() if self.standardize else Identity()).fit(codes)
        u = standardizer.transform(codes)
        seeds = np.random.SeedSequence(self.random_state).generate_state(len(classes))
        # The classes' fits are independent: they run side by side, one per core
        # (_blocks.map_tasks), with the same results as one after the other.
        gmms = _blocks.map_tasks(
            lambda job: self._mixture(self.n_components, int(job[1])).fit(u[labels == job[0]]),
            list(zip(classes, seeds)),
        )
        # Set every attribute only now, so that a failed fit leaves no half-fitted model.
        for stale in ("threshold_", "reject_quantile_"):
            self.__dict__.pop(stale, None)
        self.classes_, self.gmms_, self.standardizer_ = classes, gmms, standardizer
        self.class_prior_ = counts / counts.sum() if self.fit_prior else np.full(len(counts), 1.0 / len(counts))
        self.n_features_in_ = codes.shape[1]
        return self

    def fit_threshold(self, codes, quantile=0.01):
        """Choose the "none of these" threshold on training codes.

        Parameters
        ----------
        codes : ndarray of shape (n_samples, d)
            Training codes (never test codes: the threshold is part of the model).
        quantile : float in [0, 1)
            Fraction of these codes that :meth:`predict_or_reject` will reject.

        Returns
        -------
        self
        """
        if not 0.0 <= quantile < 1.0:
            raise ValueError(f"quantile must lie in [0, 1); got {quantile}.")
        self.threshold_ = float(np.quantile(self.max_class_log_likelihood(codes), quantile))
        self.reject_quantile_ = quantile
        return self

    # -- densities and decisions ------------------------------------------------------------

    def _check_is_fitted(self):
        if not hasattr(self, "gmms_"):
            raise NotFittedError(
                "This ClassConditionalGMM is not fitted yet: call fit(codes, labels) first."
            )

    def _class_index(self, label):
        self._check_is_fitted()
        where = np.flatnonzero(self.classes_ == label)
        if len(where) == 0:
            raise ValueError(f"unknown class {label!r}; the classes are {self.classes_.tolist()}.")
        return int(where[0])

    def _log_likelihoods_u(self, u):
        return np.stack([gmm.score_samples(u) for gmm in self.gmms_], axis=1)  # (n, C)

    def class_log_likelihoods(self, codes):
        """log p(z | c) for every code and class, as densities of the original codes.

        Parameters
        ----------
        codes : ndarray of shape (n_samples, d)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        self._check_is_fitted()
        u = self.standardizer_.transform(codes)
        return self._log_likelihoods_u(u) + self.standardizer_.log_jacobian_

    def _log_joint(self, codes):
        return self.class_log_likelihoods(codes) + np.log(self.class_prior_)  # (n, C)

    def predict_log_proba(self, codes):
        """log p(c | z) by Bayes' rule; ndarray of shape (n_samples, n_classes)."""
        log_joint = self._log_joint(codes)
        return log_joint - logsumexp(log_joint, axis=1)[:, np.newaxis]

    def predict_proba(self, codes):
        """p(c | z): normalised class likelihoods times the prior; rows sum to one.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.exp(self.predict_log_proba(codes))

    def predict(self, codes):
        """The most probable class of each code; ndarray of shape (n_samples,) of labels."""
        log_joint = self._log_joint(codes)
        return self.classes_[np.argmax(log_joint, axis=1)]

    def score_samples(self, codes):
        """log p(z) = log sum_c prior_c p(z | c); ndarray of shape (n_samples,)."""
        return logsumexp(self._log_joint(codes), axis=1)

    def max_class_log_likelihood(self, codes):
        """max_c log p(z | c), the score the "none of these" threshold cuts; shape (n_samples,).

        Low values mean "unlike every class": use it as an out-of-distribution score.
        """
        return np.max(self.class_log_likelihoods(codes), axis=1)

    def predict_or_reject(self, codes, reject_label=-1):
        """:meth:`predict`, but ``reject_label`` where the best class likelihood is too low.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        self._check_is_fitted()
        if not hasattr(self, "threshold_"):
            raise NotFittedError("call fit_threshold(train_codes) before predict_or_reject.")
        if np.any(self.classes_ == reject_label):
            raise ValueError(f"reject_label={reject_label!r} is also a class; pick another value.")
        log_lik = self.class_log_likelihoods(codes)
        labels = self.classes_[np.argmax(log_lik + np.log(self.class_prior_), axis=1)]
        labels = labels.astype(np.result_type(labels, np.asarray(reject_label)))
        labels[np.max(log_lik, axis=1) < self.threshold_] = reject_label
        return labels

    # -- generating -------------------------------------------------------------------------

    def sample_codes(self, label, n, rng):
        """Draw codes from p(z | label), in the original code space, in random order.

        Parameters
        ----------
        label : a class label
        n : int
        rng : numpy.random.Generator

        Returns
        -------
        ndarray of shape (n, d)
        """
        u, _ = self.gmms_[self._class_index(label)].sample(n, rng=rng)
        # GaussianMixture.sample groups draws by component: shuffle so any slice is typical.
        return self.standardizer_.inverse_transform(u[rng.permutation(n)])

    def interpolate_codes(self, label_a, label_b, n_steps, rng):
        """A straight line from a draw of class ``label_a`` to a draw of ``label_b``.

        Returns
        -------
        ndarray of shape (n_steps, d)
            Row 0 is the draw from ``label_a``, the last row the draw from ``label_b``.
        """
        z_a = self.sample_codes(label_a, 1, rng)[0]
        z_b = self.sample_codes(label_b, 1, rng)[0]
        t = np.linspace(0.0, 1.0, n_steps)[:, np.newaxis]  # (n_steps, 1)
        return (1.0 - t) * z_a + t * z_b

    def component_weights(self, label):
        """Mixture weights of the class's components; shape (K,)."""
        return self.gmms_[self._class_index(label)].weights_.copy()

    def component_means(self, label):
        """Means of the class's components in the original code space; shape (K, d)."""
        return self.standardizer_.inverse_transform(self.gmms_[self._class_index(label)].means_)


def kl_matrix(model: ClassConditionalGMM, n_samples=10_000, rng=None):
    """KL(p(. | a) || p(. | b)) for every pair of classes of ``model``, by Monte Carlo.

    Row a uses one set of ``n_samples`` draws from class a for every column, so the diagonal
    is exactly 0 (with standard error 0). KL is unchanged by the shared standardisation, so
    it is computed on the standardised codes.

    Parameters
    ----------
    model : ClassConditionalGMM
        Fitted.
    n_samples : int
        Draws per class; the standard error shrinks as 1 / sqrt(n_samples).
    rng : numpy.random.Generator

    Returns
    -------
    kl : ndarray of shape (n_classes, n_classes)
        ``kl[a, b]`` estimates KL(p_a || p_b) in nats, in the order of ``classes_``.
    stderr : ndarray of shape (n_classes, n_classes)
        Sample standard deviation of log p(z|a) - log p(z|b) over the draws / sqrt(n_samples).
    """
    rng = np.random.default_rng() if rng is None else rng
    model._check_is_fitted()
    C = len(model.classes_)
    kl, stderr = np.zeros((C, C)), np.zeros((C, C))
    for a in range(C):
        u, _ = model.gmms_[a].sample(n_samples, rng=rng)
        log_lik = model._log_likelihoods_u(u)  # (n, C)
        for b in range(C):
            kl[a, b], stderr[a, b] = _mean_and_stderr(log_lik[:, a] - log_lik[:, b])
    return kl, stderr


def uniform_box_codes(codes, n, rng):
    """Codes drawn uniformly from the bounding box of ``codes`` (n_samples, d); shape (n, d)."""
    codes = check_X(codes, name="codes")
    return rng.uniform(codes.min(axis=0), codes.max(axis=0), size=(n, codes.shape[1]))


def _mean_and_stderr(values):
    n = len(values)
    std = float(np.std(values, ddof=1)) if n > 1 else float("nan")
    return float(np.mean(values)), std / np.sqrt(n)


class GaussianAutoEmbeddings:
    """A trained autoencoder with a :class:`ClassConditionalGMM` on its codes.

    The autoencoder stays fixed (it was trained without labels); ``fit`` only encodes the
    training images and fits the class mixtures and the "none of these" threshold.

    Parameters
    ----------
    autoencoder : gae_course.models.Autoencoder
        Trained; anything with ``encode`` and ``decode`` works.
    gmm : ClassConditionalGMM, optional
        Default ``ClassConditionalGMM()`` (6 full-covariance components per class).
    reject_quantile : float
        Fraction of training images the "none of these" threshold rejects.
    batch_size : int
        Images per batch when encoding and decoding.

    Attributes
    ----------
    codes_ : ndarray of shape (n_train, latent_dim)
        Codes of the training images, kept for plots.
    labels_ : ndarray of shape (n_train,)
    """

    def __init__(self, autoencoder, gmm=None, *, reject_quantile=0.01, batch_size=1024):
        self.autoencoder = autoencoder
        self.gmm = ClassConditionalGMM() if gmm is None else gmm
        self.reject_quantile = reject_quantile
        self.batch_size = batch_size

    def __repr__(self):
        return f"GaussianAutoEmbeddings({type(self.autoencoder).__name__}, {self.gmm!r})"

    def encode(self, images):
        """Images (n, 28, 28) to codes, ndarray of shape (n, latent_dim)."""
        from gae_course.train import encode_dataset

        return encode_dataset(self.autoencoder, images, self.batch_size)

    def decode(self, codes):
        """Codes (n, latent_dim) to pixel probabilities, ndarray of shape (n, 28, 28)."""
        from gae_course.train import decode_latents

        return decode_latents(self.autoencoder, np.asarray(codes, dtype=np.float32), self.batch_size)

    def fit(self, images, labels):
        """Encode the training images, fit the class mixtures and the rejection threshold.

        Parameters
        ----------
        images : ndarray of shape (n, 28, 28)
        labels : ndarray of shape (n,)

        Returns
        -------
        self
        """
        return self.fit_codes(self.encode(images), labels)

    def fit_codes(self, codes, labels):
        """:meth:`fit` from codes already computed with :meth:`encode`; shape (n, latent_dim)."""
        self.codes_ = np.asarray(codes)
        self.labels_ = np.asarray(labels)
        self.gmm.fit(self.codes_, self.labels_)
        self.gmm.fit_threshold(self.codes_, self.reject_quantile)
        return self

    # -- decisions on images ----------------------------------------------------------------

    def predict(self, images):
        """Most probable class per image; ndarray of shape (n,)."""
        return self.gmm.predict(self.encode(images))

    def max_class_log_likelihood(self, images):
        """max_c log p(f(x) | c): low for images unlike every class; shape (n,)."""
        return self.gmm.max_class_log_likelihood(self.encode(images))

    # -- images from the model ----------------------------------------------------------------

    def sample(self, label, n, rng):
        """Images decoded from codes drawn from class ``label``'s mixture; shape (n, 28, 28)."""
        return self.decode(self.gmm.sample_codes(label, n, rng))

    def interpolate(self, label_a, label_b, n_steps, rng):
        """Decoded straight line from a draw of ``label_a`` to one of ``label_b``; (n_steps, 28, 28)."""
        return self.decode(self.gmm.interpolate_codes(label_a, label_b, n_steps, rng))

    def styles(self, label):
        """Decoded component means of class ``label``, one "style" each; shape (K, 28, 28)."""
        return self.decode(self.gmm.component_means(label))
