"""gae_course.cache: keys derived from the recipe, checkpoints that are never served stale."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gae_course import cache, train
from gae_course.models import Autoencoder, AutoencoderConfig, autoencoder_loss
from gae_course.train import TrainConfig

TINY = AutoencoderConfig(kind="mlp", latent_dim=4, hidden=(32,))
SETTINGS = TrainConfig(epochs=1, batch_size=32)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path))
    return tmp_path / "models"


def tiny_images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(6, 22, size=(n, 2, 1, 1))
    return np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / 18.0).astype(np.float32)


IMAGES = tiny_images()


def run_cached(images=IMAGES, config=TINY, settings=SETTINGS, name="tiny", **kwargs):
    return cache.cached_fit(name, Autoencoder, config, autoencoder_loss, images, settings,
                            device="cpu", progress=False, **kwargs)


def recipe(**changes):
    parts = dict(model_class=Autoencoder, model_config=TINY, loss_fn=autoencoder_loss,
                 train_tensors=IMAGES, train_config=SETTINGS)
    parts.update(changes)
    return cache.Recipe(**parts)


def test_second_call_loads_the_same_model(models_dir, capsys):
    first = run_cached()
    assert not first.loaded and first.path.parent == models_dir and first.path.exists()
    assert first.path.name.startswith("tiny-") and len(first.path.stem) == len("tiny-") + 16
    assert first.path.stem.endswith(first.key[:16])
    assert "cache: trained tiny" in capsys.readouterr().out
    second = run_cached()
    out = capsys.readouterr().out
    assert second.loaded and out.startswith(f"cache: loaded tiny from {first.path} (trained ")
    assert second.history == first.history and second.key == first.key
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not second.model.training
    assert [p.name for p in models_dir.iterdir()] == [first.path.name]  # no temporary left behind


def test_every_part_of_the_recipe_changes_the_key():
    base = cache.model_key(recipe())
    other_images = IMAGES.copy()
    other_images[0, 0, 0] += 0.5  # one pixel of one image
    variants = [
        recipe(model_config=AutoencoderConfig(kind="mlp", latent_dim=5, hidden=(32,))),
        recipe(train_tensors=other_images),
        recipe(train_tensors=IMAGES[:63]),  # another subset
        recipe(train_tensors=IMAGES[::-1].copy()),  # another order: other batches
        recipe(train_tensors=(IMAGES, np.zeros(64, np.int64))),  # labels too
        recipe(train_config=TrainConfig(epochs=2, batch_size=32)),
        recipe(train_config=TrainConfig(epochs=1, batch_size=32, lr=2e-3)),
        recipe(train_config=TrainConfig(epochs=1, batch_size=32, seed=1)),
        recipe(seed=1),
        recipe(transform=train.as_tensor),
    ]
    keys = {cache.model_key(r) for r in variants}
    assert base not in keys and len(keys) == len(variants)
    assert cache.model_key(recipe(train_tensors=IMAGES.copy())) == base  # content, not identity


def test_a_dataclass_loss_keys_its_fields_and_a_closure_is_refused():
    from gae_course import vae

    config = vae.VAEConfig(latent_dim=2, hidden=(8,))
    keys = {cache.model_key(recipe(model_class=vae.VAE, model_config=config, loss_fn=vae.VAELoss(beta)))
            for beta in (1.0, 2.0)}
    assert len(keys) == 2
    beta = 2.0
    with pytest.raises(TypeError, match="closure"):
        cache.model_key(recipe(loss_fn=lambda m, b: autoencoder_loss(m, b) * beta))
    with pytest.raises(TypeError, match="stable name"):
        cache.model_key(recipe(loss_fn=lambda m, b: autoencoder_loss(m, b)))


def test_the_modules_a_vae_reaches_include_its_loss_and_estimators():
    reached = cache.reached_modules("gae_course.vae", "gae_course.train")
    assert {"gae_course.vae", "gae_course.elbo", "gae_course.estimators", "gae_course.train",
            "gae_course.models"} <= set(reached)
    assert "gae_course.cache" not in reached
    assert "gae_course.mixture" not in reached  # a VAE's weights never depend on EM


def _vae_key_in(package_parent: Path) -> str:
    code = (
        "import numpy as np\n"
        "from gae_course import cache, vae, train\n"
        "config = vae.VAEConfig(latent_dim=2, hidden=(8,))\n"
        "r = cache.Recipe(vae.VAE, config, vae.VAELoss(1.0), np.zeros((4, 28, 28), np.float32),\n"
        "                 train.TrainConfig(epochs=1), vae.binarize)\n"
        "print(cache.model_key(r))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True, cwd=package_parent)
    return out.stdout.strip()


@pytest.mark.parametrize("module", ["elbo.py", "estimators.py", "vae.py", "train.py", "models.py"])
def test_editing_a_module_the_vae_loss_reaches_changes_its_key(tmp_path, module):
    import gae_course

    copy = tmp_path / "pkg"
    shutil.copytree(Path(gae_course.__file__).parent, copy / "gae_course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = _vae_key_in(copy)
    with open(copy / "gae_course" / module, "a") as f:
        f.write("\n# an edit\n")
    assert _vae_key_in(copy) != before


def test_editing_an_unrelated_module_keeps_the_key(tmp_path):
    import gae_course

    copy = tmp_path / "pkg"
    shutil.copytree(Path(gae_course.__file__).parent, copy / "gae_course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = _vae_key_in(copy)
    with open(copy / "gae_course" / "plotting.py", "a") as f:
        f.write("\n# an edit\n")
    assert _vae_key_in(copy) == before


def test_changed_settings_retrain(models_dir):
    run_cached()
    result = run_cached(settings=TrainConfig(epochs=2, batch_size=32))
    assert not result.loaded and len(result.history["loss"]) == 2
    assert len(list(models_dir.glob("tiny-*.pt"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_checkpoint_is_reported_and_retrained(models_dir, capsys, damage):
    path = run_cached().path
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint" * 50, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    capsys.readouterr()
    result = run_cached()
    first_line = capsys.readouterr().out.splitlines()[0]
    assert not result.loaded
    assert first_line.startswith(f"cache: {path} is unusable (") and first_line.endswith("); retraining")
    assert run_cached().loaded  # the retrained file replaced the broken one


def test_mismatched_weights_or_recipe_are_retrained_not_half_loaded(models_dir, capsys):
    path = run_cached().path
    wrong = Autoencoder(AutoencoderConfig(kind="mlp", latent_dim=4, hidden=(16,)))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = wrong.state_dict()
    torch.save(payload, path)
    capsys.readouterr()
    assert not run_cached().loaded
    assert "is unusable (weight encoder.net.1.weight has shape" in capsys.readouterr().out
    payload = torch.load(path, weights_only=True)
    payload["key_parts"] = {"something": "else"}  # a file renamed by hand, or a key collision
    torch.save(payload, path)
    assert not run_cached().loaded
    assert "trained from another recipe" in capsys.readouterr().out


def explode(model, batch):
    raise RuntimeError("boom")


def test_no_file_is_left_when_training_fails(models_dir):
    with pytest.raises(RuntimeError, match="boom"):
        cache.cached_fit("tiny", Autoencoder, TINY, explode, IMAGES, SETTINGS, device="cpu", progress=False)
    assert not models_dir.exists() or list(models_dir.iterdir()) == []


def test_no_partial_file_is_left_when_saving_fails(models_dir, monkeypatch):
    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(cache.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run_cached()
    assert list(models_dir.iterdir()) == []


def test_names_must_be_plain_file_stems():
    with pytest.raises(ValueError, match="name"):
        cache.checkpoint_path("../escape", "0" * 64)


def test_checkpoint_loads_with_weights_only(models_dir):
    path = run_cached().path
    payload = torch.load(path, weights_only=True)
    assert set(payload) >= {"state_dict", "history", "key_parts"}
    assert os.path.getsize(path) > 0
