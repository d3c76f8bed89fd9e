r"""Figures the chapters draw again and again: covariance ellipses, image grids, EM curves.

Matplotlib only (never torch), and ``matplotlib.pyplot`` is imported only by the helpers that
create a figure, so importing this module stays cheap. Course rule: every figure has a title
and labelled axes, so a helper that creates its own figure always sets both; a helper given
an ``ax`` sets only what it is asked to.

The covariance ellipse of a 2-D Gaussian :math:`\mathcal N(\mu, \Sigma)` at ``n_std``
standard deviations is the set :math:`(x-\mu)^\top \Sigma^{-1} (x-\mu) = n_{std}^2`. With
the eigen-decomposition :math:`\Sigma = V \operatorname{diag}(\lambda_1, \lambda_2) V^\top`
its semi-axes point along the eigenvectors and have lengths :math:`n_{std}\sqrt{\lambda_i}`
(Bishop, *Pattern Recognition and Machine Learning*, 2006, section 2.3, figure 2.7).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import is_color_like
from matplotlib.patches import Ellipse

__all__ = ["plot_covariance_ellipses", "image_grid", "plot_log_likelihood"]


def _new_axes(figsize=None):
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


# --------------------------------------------------------------------------------------------
# Covariance ellipses
# --------------------------------------------------------------------------------------------


def _set_labels(ax, title, xlabel, ylabel):
    """Set whichever of the title and axis labels is given (None leaves it as it is)."""
    if title is not None:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)


def _full_covariances(covariances, n_components):
    """Expand full (K, 2, 2), diag (K, 2) or spherical (K,) covariances to (K, 2, 2)."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariances.ndim == 3 and covariances.shape[1:] == (2, 2):
        full = covariances
    elif covariances.ndim == 2 and covariances.shape[1] == 2:  # diag: variances per axis
        full = np.zeros((len(covariances), 2, 2))
        full[:, 0, 0], full[:, 1, 1] = covariances[:, 0], covariances[:, 1]
    elif covariances.ndim == 1:  # spherical: one variance per component
        full = covariances[:, None, None] * np.eye(2)
    else:
        raise ValueError(
            "covariances must be full (K, 2, 2), diag (K, 2) or spherical (K,) for 2-D data; "
            f"got shape {covariances.shape}. For d > 2, project the data (and the covariances) "
            "onto two dimensions first."
        )
    if len(full) != n_components:
        raise ValueError(
            f"got {n_components} means but {len(full)} covariances; pass one of each per component."
        )
    return full


def _ellipse_geometry(covariance):
    """Semi-axis lengths (major, minor) at one standard deviation, and the angle in degrees."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    # Rounding can make a singular covariance's smallest eigenvalue a tiny negative number.
    scale = max(1.0, float(np.abs(eigenvalues).max()))
    if eigenvalues[0] < -1e-12 * scale:
        raise ValueError(
            f"covariance {covariance.tolist()} is not positive semi-definite "
            f"(eigenvalues {eigenvalues.tolist()}); it cannot be drawn as an ellipse."
        )
    eigenvalues = np.maximum(eigenvalues, 0.0)
    major = eigenvectors[:, 1]  # direction of the largest eigenvalue
    angle = math.degrees(math.atan2(major[1], major[0]))
    return math.sqrt(eigenvalues[1]), math.sqrt(eigenvalues[0]), angle


def plot_covariance_ellipses(
    ax, means, covariances, weights=None, n_std=(1.0, 2.0), colors=None, **kwargs
):
    """Draw each 2-D Gaussian component as ellipses at ``n_std`` standard deviations.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw (typically over a scatter plot of the data).
    means : ndarray of shape (n_components, 2)
    covariances : ndarray
        Full (n_components, 2, 2), diag (n_components, 2) or spherical (n_components,).
        Diag and spherical ones are expanded to full matrices first.
    weights : ndarray of shape (n_components,), optional
        Mixing weights. When given, each component's opacity is proportional to its weight
        (the heaviest component gets the full ``alpha``), so a component that EM is starving
        fades away.
    n_std : float or sequence of float
        Radii in standard deviations (Mahalanobis distance); one ellipse per value.
    colors : color or sequence of colors, optional
        One colour for all components, or one per component. Defaults to the colour cycle
        ``"C0"``, ``"C1"``, ... so that component k has the same colour as in other plots.
    **kwargs
        Passed on to :class:`matplotlib.patches.Ellipse` (``alpha`` defaults to 0.25,
        ``linewidth`` to 1.5). ``fill=False`` draws outlines only.

    Returns
    -------
    patches : list of matplotlib.patches.Ellipse
        ``n_components * len(n_std)`` patches, component by component.
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(
            f"means must have shape (n_components, 2); got {means.shape}. "
            "Covariance ellipses are drawn for 2-D data only."
        )
    n_components = len(means)
    full = _full_covariances(covariances, n_components)
    radii = np.atleast_1d(np.asarray(n_std, dtype=np.float64))
    if radii.ndim != 1 or np.any(radii <= 0):
        raise ValueError(f"n_std must be a positive number or a list of them; got {n_std!r}.")

    if colors is None:
        colors = [f"C{k % 10}" for k in range(n_components)]
    elif is_color_like(colors):  # one colour (a name or an RGB(A) tuple) for every component
        colors = [colors] * n_components
    colors = list(colors)
    if len(colors) != n_components:
        raise ValueError(f"got {len(colors)} colors for {n_components} components.")

    base_alpha = kwargs.pop("alpha", 0.25)
    kwargs.setdefault("linewidth", 1.5)
    if weights is None:
        alphas = np.full(n_components, base_alpha)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n_components,) or np.any(weights < 0):
            raise ValueError(
                f"weights must be {n_components} non-negative numbers; got shape {weights.shape}."
            )
        top = weights.max()
        alphas = base_alpha * (weights / top if top > 0 else np.ones(n_components))

    patches = []
    for k in range(n_components):
        semi_major, semi_minor, angle = _ellipse_geometry(full[k])
        for r in radii:
            ellipse = Ellipse(
                xy=means[k],
                width=2.0 * r * semi_major,  # width and height are full axis lengths
                height=2.0 * r * semi_minor,
                angle=angle,
                facecolor=colors[k],
                edgecolor=colors[k],
                alpha=float(alphas[k]),
                **kwargs,
            )
            ax.add_patch(ellipse)
            patches.append(ellipse)
    ax.autoscale_view()
    return patches


# --------------------------------------------------------------------------------------------
# Image grids
# --------------------------------------------------------------------------------------------


def _tile(images, n_cols):
    """One (rows*h + rows-1, cols*w + cols-1) array, NaN in separators and empty cells."""
    n, h, w = images.shape
    cols = min(n_cols, n)
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    return canvas, rows, cols


def image_grid(
    images,
    n_cols=10,
    ax=None,
    title=None,
    row_labels=None,
    cmap="gray",
    vmin=0,
    vmax=1,
    xlabel=None,
    ylabel=None,
):
    """Tile images into one picture, row by row, with a 1-pixel separator.

    Parameters
    ----------
    images : ndarray of shape (n_images, height, width)
        Grey-level images (a CPU tensor works too). Flat images (n_images, height * width) are
        refused: reshape them first, so that a wrong image size never tiles silently.
    n_cols : int
        Images per row (fewer if there are fewer images).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure sized to the grid.
    title : str, optional
        Axes title. A new figure always gets one (default: how many images it shows).
    row_labels : sequence of str, optional
        One label per row, written left of the row (e.g. the class or the component).
    cmap, vmin, vmax
        Passed to :meth:`~matplotlib.axes.Axes.imshow`; pixel values in [0, 1] by default.
    xlabel, ylabel : str, optional
        Axis labels. A new figure always gets them (defaults describe the layout).

    Returns
    -------
    ax : matplotlib.axes.Axes
        ``ax.images[-1].get_array()`` is the tiled picture, shape
        ``(rows * (height + 1) - 1, cols * (width + 1) - 1)``; separators and empty cells are
        masked and show the axes background.
    """
    images = np.asarray(images)
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        square = side * side == images.shape[1]
        how = f"(n, {side}, {side})" if square else "(n, height, width)"
        raise ValueError(
            f"image_grid expects images of shape (n, height, width); got flat images of shape "
            f"{images.shape}: reshape to {how} first"
            + (f", e.g. images.reshape(-1, {side}, {side})." if square else ".")
        )
    if images.ndim != 3:
        raise ValueError(
            f"image_grid expects images of shape (n, height, width); got shape {images.shape}. "
            "For one image use images[None]; for colour channels pick one channel."
        )
    if len(images) == 0:
        raise ValueError("image_grid got no images (shape (0, h, w)); pass at least one.")
    if not (isinstance(n_cols, (int, np.integer)) and n_cols >= 1):
        raise ValueError(f"n_cols must be a positive integer; got {n_cols!r}.")

    canvas, rows, cols = _tile(images.astype(np.float64), n_cols)
    created = ax is None
    if created:
        h, w = images.shape[1:]
        ax = _new_axes(figsize=(min(12.0, 0.6 + cols * w / 28 * 0.9), 0.8 + rows * h / 28 * 0.9))
    ax.imshow(
        np.ma.masked_invalid(canvas), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if row_labels is not None:
        row_labels = [str(label) for label in row_labels]
        if len(row_labels) != rows:
            raise ValueError(f"got {len(row_labels)} row_labels for {rows} rows of images.")
        h = images.shape[1]
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(rows)], labels=row_labels)
        ax.tick_params(axis="y", length=0)
    if created:
        title = title if title is not None else f"{len(images)} images"
        xlabel = xlabel if xlabel is not None else f"{cols} images per row, left to right"
        if ylabel is None:
            ylabel = "row label" if row_labels else "rows, top to bottom"
    _set_labels(ax, title, xlabel, ylabel)
    return ax


# --------------------------------------------------------------------------------------------
# EM curves
# --------------------------------------------------------------------------------------------


def plot_log_likelihood(
    history,
    ax=None,
    label=None,
    title="Log-likelihood during EM",
    xlabel="EM iteration",
    ylabel="mean log-likelihood per sample",
    first_iteration=1,
):
    """Plot the mean log-likelihood per sample against the EM iteration, with markers.

    Parameters
    ----------
    history : sequence of float, shape (n_iterations,)
        E.g. ``GaussianMixture.log_likelihood_history_``: the value at each EM iteration.
    ax : matplotlib.axes.Axes, optional
        Draw on these axes (call again with the same ``ax`` and a ``label`` to compare runs);
        by default a new figure.
    label : str, optional
        Legend entry for this curve; a legend is drawn when given.
    title, xlabel, ylabel : str
        Set on the axes (pass ``None`` to leave one unchanged on an existing ``ax``).
    first_iteration : int
        The x value of ``history[0]``: 1 for the value computed at EM's first iteration (as
        ``GaussianMixture`` records it), 0 if the history starts at the initialisation.

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    from matplotlib.ticker import MaxNLocator

    values = np.asarray(history, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(
            f"history must be a non-empty 1-D sequence of numbers; got shape {values.shape}."
        )
    if ax is None:
        ax = _new_axes()
        # a new figure always gets a title and labelled axes, even if None was passed
        title = title if title is not None else "Log-likelihood during EM"
        xlabel = xlabel if xlabel is not None else "EM iteration"
        ylabel = ylabel if ylabel is not None else "mean log-likelihood per sample"
    iterations = np.arange(first_iteration, first_iteration + len(values))
    ax.plot(iterations, values, marker="o", markersize=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _set_labels(ax, title, xlabel, ylabel)
    if label is not None:
        ax.legend()
    return ax
