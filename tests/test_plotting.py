"""Tests for gae_course.plotting: geometry of the ellipses, tiling of the grid, EM curves."""

import math

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gae_course import plotting  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


@pytest.fixture(autouse=True)
def close_figures():
    """Figures created inside the helpers are closed too, so none piles up."""
    yield
    plt.close("all")


def _angle_mod_180(degrees):
    return degrees % 180.0


# --------------------------------------------------------------------------------------------
# plot_covariance_ellipses
# --------------------------------------------------------------------------------------------


def test_ellipse_axes_are_twice_n_std_sqrt_eigenvalues(ax):
    # Eigenvalues 4 and 1, major axis along (1, 1) / sqrt(2): a 45 degree rotation.
    rotation = np.array([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2.0)
    covariance = rotation @ np.diag([4.0, 1.0]) @ rotation.T
    patches = plotting.plot_covariance_ellipses(
        ax, np.array([[1.0, -2.0]]), covariance[None], n_std=(1.0, 2.0)
    )
    assert len(patches) == 2
    for patch, n_std in zip(patches, (1.0, 2.0)):
        assert patch.width == pytest.approx(2 * n_std * 2.0)  # sqrt(4)
        assert patch.height == pytest.approx(2 * n_std * 1.0)  # sqrt(1)
        assert _angle_mod_180(patch.angle) == pytest.approx(45.0)
        assert patch.center == pytest.approx((1.0, -2.0))
    assert all(p in ax.patches for p in patches)


def test_ellipse_matches_the_eigendecomposition_of_a_random_covariance(ax):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 2))
    covariance = a @ a.T + 0.1 * np.eye(2)
    (patch,) = plotting.plot_covariance_ellipses(ax, np.zeros((1, 2)), covariance[None], n_std=1.5)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    assert patch.width == pytest.approx(2 * 1.5 * math.sqrt(eigenvalues[1]))
    assert patch.height == pytest.approx(2 * 1.5 * math.sqrt(eigenvalues[0]))
    major = eigenvectors[:, 1]
    expected = math.degrees(math.atan2(major[1], major[0]))
    assert _angle_mod_180(patch.angle) == pytest.approx(_angle_mod_180(expected))
    # Independent of eigh: a point on the ellipse boundary has Mahalanobis distance n_std.
    boundary = patch.get_patch_transform().transform([[1.0, 0.0]])[0]  # unit circle -> ellipse
    distance = math.sqrt(boundary @ np.linalg.solve(covariance, boundary))
    assert distance == pytest.approx(1.5)


def test_diag_and_spherical_covariances_are_expanded(ax):
    means = np.array([[0.0, 0.0], [5.0, 5.0]])
    variances = np.array([[9.0, 1.0], [1.0, 4.0]])  # diag: (K, 2)
    diag = plotting.plot_covariance_ellipses(ax, means, variances, n_std=1.0)
    assert [(p.width, p.height) for p in diag] == [(6.0, 2.0), (4.0, 2.0)]
    assert _angle_mod_180(diag[0].angle) == pytest.approx(0.0)
    assert _angle_mod_180(diag[1].angle) == pytest.approx(90.0)  # larger variance along y
    spherical = plotting.plot_covariance_ellipses(ax, means, np.array([4.0, 0.25]), n_std=2.0)
    assert [(p.width, p.height) for p in spherical] == [(8.0, 8.0), (2.0, 2.0)]


def test_alpha_follows_the_weights_and_colors_cycle(ax):
    means = np.zeros((3, 2))
    covariances = np.stack([np.eye(2)] * 3)
    patches = plotting.plot_covariance_ellipses(
        ax, means, covariances, weights=np.array([0.5, 0.25, 0.25]), n_std=1.0, alpha=0.4
    )
    assert [p.get_alpha() for p in patches] == pytest.approx([0.4, 0.2, 0.2])
    colors = [matplotlib.colors.to_hex(p.get_edgecolor(), keep_alpha=False) for p in patches]
    assert colors == [matplotlib.colors.to_hex(f"C{k}") for k in range(3)]
    single = plotting.plot_covariance_ellipses(ax, means, covariances, colors="black", fill=False)
    assert len(single) == 6 and not any(p.get_fill() for p in single)


def test_ellipses_refuse_bad_input(ax):
    with pytest.raises(ValueError, match="2-D data only"):
        plotting.plot_covariance_ellipses(ax, np.zeros((1, 3)), np.eye(3)[None])
    with pytest.raises(ValueError, match="positive semi-definite"):
        not_psd = np.array([[[1.0, 0.0], [0.0, -1.0]]])
        plotting.plot_covariance_ellipses(ax, np.zeros((1, 2)), not_psd)
    with pytest.raises(ValueError, match="2 means but 1 covariances"):
        plotting.plot_covariance_ellipses(ax, np.zeros((2, 2)), np.eye(2)[None])


# --------------------------------------------------------------------------------------------
# image_grid
# --------------------------------------------------------------------------------------------


def test_image_grid_tiles_with_one_pixel_separators():
    images = np.random.default_rng(0).uniform(size=(23, 28, 28))
    ax = plotting.image_grid(images, n_cols=10)
    canvas = ax.images[-1].get_array()
    # 3 rows, 10 columns, one separator pixel between neighbours
    assert canvas.shape == (3 * 28 + 2, 10 * 28 + 9)
    np.testing.assert_array_equal(canvas[:28, :28], images[0])
    np.testing.assert_array_equal(canvas[29:57, 29:57], images[11])  # row 1, column 1
    assert canvas.mask[28, :].all() and canvas.mask[:, 28].all()  # separators
    assert canvas.mask[58:, 3 * 29 :].all()  # empty cells after the 23rd image
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_image_grid_fewer_images_than_columns_and_row_labels():
    images = np.zeros((4, 5, 7))
    ax = plotting.image_grid(images, n_cols=10, title="four", row_labels=["zero"])
    assert ax.images[-1].get_array().shape == (5, 4 * 7 + 3)
    assert ax.get_title() == "four"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zero"]


def test_image_grid_draws_on_a_given_axes(ax):
    returned = plotting.image_grid(np.ones((6, 3, 3)), n_cols=3, ax=ax)
    assert returned is ax
    assert ax.images[-1].get_array().shape == (2 * 3 + 1, 3 * 3 + 2)


def test_image_grid_refuses_flat_images():
    with pytest.raises(ValueError, match=r"reshape to \(n, 28, 28\) first"):
        plotting.image_grid(np.zeros((5, 784)))
    with pytest.raises(ValueError, match=r"shape \(n, height, width\)"):
        plotting.image_grid(np.zeros((5, 28, 28, 3)))
    assert not plt.get_fignums()  # refused before creating a figure


# --------------------------------------------------------------------------------------------
# plot_log_likelihood
# --------------------------------------------------------------------------------------------


def test_plot_log_likelihood_draws_one_marker_per_iteration():
    history = [-3.2, -2.5, -2.2, -2.15, -2.14]
    ax = plotting.plot_log_likelihood(history)
    (line,) = ax.lines
    assert len(line.get_xdata()) == len(history)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 6))
    np.testing.assert_array_equal(line.get_ydata(), history)
    assert line.get_marker() not in (None, "", "None")
    assert ax.get_title()
    assert ax.get_xlabel() == "EM iteration"
    assert ax.get_ylabel() == "mean log-likelihood per sample"


def test_plot_log_likelihood_overlays_labelled_curves(ax):
    plotting.plot_log_likelihood([-2.0, -1.5], ax=ax, label="train")
    plotting.plot_log_likelihood([-2.1, -1.7, -1.6], ax=ax, label="held out", first_iteration=0)
    assert [len(line.get_xdata()) for line in ax.lines] == [2, 3]
    assert ax.lines[1].get_xdata()[0] == 0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "held out"]


def test_plot_log_likelihood_refuses_non_1d_history():
    with pytest.raises(ValueError, match="1-D"):
        plotting.plot_log_likelihood(np.zeros((3, 2)))


def test_importing_plotting_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, gae_course.plotting; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
