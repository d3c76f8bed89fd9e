"""gae_course.results: what a chapter's last cell hands to build/results.json."""

import json
import os

import numpy as np
import pytest

from gae_course import results


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv("GAE_COURSE_RESULTS_DIR", str(folder))
    return folder


def test_returns_figures_with_mode_and_writes_nothing_without_the_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("GAE_COURSE_RESULTS_DIR", raising=False)
    monkeypatch.setenv("GAE_COURSE_QUICK", "1")
    monkeypatch.chdir(tmp_path)
    entry = results.record("01_em_gmm", nmi={"mnist": {"5": 0.5}})
    assert entry == {"nmi": {"mnist": {"5": 0.5}}, "mode": "quick"}
    assert list(tmp_path.iterdir()) == []


def test_writes_json_named_after_the_chapter(results_dir, monkeypatch):
    monkeypatch.delenv("GAE_COURSE_QUICK", raising=False)
    entry = results.record("04_vae", test_nll_nats=91.5, iwae_k=5000)
    written = json.loads((results_dir / "04_vae.json").read_text())
    assert written == entry == {"test_nll_nats": 91.5, "iwae_k": 5000, "mode": "full"}


def test_overwrites_a_previous_run_and_leaves_no_temporary_files(results_dir):
    results.record("04_vae", test_nll_nats=100.0)
    results.record("04_vae", test_nll_nats=90.0)
    assert [p.name for p in results_dir.iterdir()] == ["04_vae.json"]
    assert json.loads((results_dir / "04_vae.json").read_text())["test_nll_nats"] == 90.0


def test_numpy_values_become_plain_json_types(results_dir):
    entry = results.record(
        "05_gaussian_auto_embeddings",
        accuracy=np.float64(0.9875),
        small=np.float32(0.25),
        count=np.int64(10_000),
        passed=np.bool_(True),
        curve=np.array([1.0, 2.0]),
        matrix=np.eye(2, dtype=np.float32),
        by_k={np.int64(5): 0.1, 10: 0.2, 0.5: 0.3},
        pair=(1, 2),
    )
    assert entry["by_k"] == {"5": 0.1, "10": 0.2, "0.5": 0.3}
    assert entry["curve"] == [1.0, 2.0] and entry["matrix"] == [[1.0, 0.0], [0.0, 1.0]]
    assert entry["pair"] == [1, 2]
    for name, kind in [("accuracy", float), ("small", float), ("count", int), ("passed", bool)]:
        assert type(entry[name]) is kind, name
    on_disk = json.loads((results_dir / "05_gaussian_auto_embeddings.json").read_text())
    assert on_disk == entry


@pytest.mark.parametrize("bad", [float("nan"), np.nan, np.float32("inf"), -np.inf])
def test_nan_and_infinity_are_refused_with_the_figure_named(results_dir, bad):
    with pytest.raises(ValueError, match=r"nmi\.mnist\.5 is .*finite number"):
        results.record("01_em_gmm", nmi={"mnist": {5: bad}})
    assert not results_dir.exists() or not any(results_dir.iterdir())


def test_nan_inside_an_array_is_refused(results_dir):
    with pytest.raises(ValueError, match=r"curve\[1\]"):
        results.record("01_em_gmm", curve=np.array([1.0, np.nan]))


@pytest.mark.parametrize("chapter", ["", "em_gmm", "01_em_gmm.ipynb", "../01_x", "1_x"])
def test_chapter_must_be_a_file_stem(chapter):
    with pytest.raises(ValueError, match="file stem"):
        results.record(chapter, x=1)


@pytest.mark.parametrize("name", ["mode", "runtime_s"])
def test_reserved_names_are_refused(name):
    with pytest.raises(ValueError, match=name):
        results.record("01_em_gmm", **{name: 1})


def test_values_that_are_not_json_are_refused():
    with pytest.raises(TypeError, match="model has type object"):
        results.record("01_em_gmm", model=object())
    with pytest.raises(TypeError, match="dict key"):
        results.record("01_em_gmm", by_k={(1, 2): 0.5})


def test_write_json_atomic_keeps_the_old_file_when_the_data_cannot_be_written(tmp_path):
    target = tmp_path / "x.json"
    results.write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError):
        results.write_json_atomic(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]
