"""Tests of gae_course.data: the IDX reader, verification, the search order, the download.

Everything but the last section runs on tiny IDX files made here, with the checksum table
patched to describe them, and on an HTTP server on 127.0.0.1 started by the test: no
network. The last section reads the real files when GAE_COURSE_DATA (or ../shared/data)
holds them.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from gae_course import data

REPO = Path(__file__).resolve().parents[1]

IMAGES, LABELS = data.SPLITS["test"]  # the files faked below: mnist's t10k pair
N_FAKE = 6


def idx_bytes(values: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes holding ``values`` (header, then the raw bytes)."""
    values = np.asarray(values, dtype=np.uint8)
    header = bytes([0, 0, 0x08, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.tobytes()


def info_of(raw: bytes, shape) -> data.FileInfo:
    return data.FileInfo(tuple(shape), len(raw), hashlib.sha256(raw).hexdigest())


def write(path: Path, raw: bytes, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No GAE_COURSE_DATA, an empty cache in tmp_path, no Debian folder, downloads allowed."""
    monkeypatch.delenv("GAE_COURSE_DATA", raising=False)
    monkeypatch.delenv("GAE_COURSE_OFFLINE", raising=False)
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "DEBIAN_FOLDERS", {"fashion-mnist": tmp_path / "debian"})
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    data.clear_cache()
    yield tmp_path
    data.clear_cache()


@pytest.fixture
def fake_mnist_test(monkeypatch):
    """Patch the table so that mnist's test split is N_FAKE tiny images; return their bytes."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N_FAKE, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # so the range [0, 1] is reached exactly
    labels = np.arange(N_FAKE, dtype=np.uint8) % 10
    raw = {IMAGES: idx_bytes(images), LABELS: idx_bytes(labels)}
    monkeypatch.setitem(data.FILES, f"mnist/{IMAGES}", info_of(raw[IMAGES], images.shape))
    monkeypatch.setitem(data.FILES, f"mnist/{LABELS}", info_of(raw[LABELS], labels.shape))
    return raw


# --------------------------------------------------------------------------- read_idx


def test_read_idx_reads_back_gzipped_and_plain(tmp_path):
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for path, compress in ((tmp_path / "a.gz", True), (tmp_path / "a", False)):
        write(path, idx_bytes(values), compress)
        out = data.read_idx(path, expected_shape=(2, 3, 4))
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, values)
    assert data.read_idx(tmp_path / "a.gz", expected_shape=(None, 3, 4)).shape == (2, 3, 4)


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda raw: raw[:-5], ["truncated", "needs 28 bytes", "has 23"]),
        (lambda raw: raw + b"\x00\x00", ["trailing bytes", "has 30"]),
        (lambda raw: raw[:10], ["truncated header", "3 dimensions"]),
        (lambda raw: b"\x00\x00\x0d" + raw[3:], ["magic number", "0x00000d03", "unsigned byte"]),
        (lambda raw: b"\x01" + raw[1:], ["magic number", "0x01000803"]),
        (lambda raw: b"\x00\x00\x08\x00" + raw[4:], ["magic number", "0x00000800"]),
        (lambda raw: raw[:2], ["too short", "2 bytes"]),
        (lambda raw: raw[:3] + b"\x02" + raw[4:], ["shape (2, 3)", "expected (2, 3, 2)"]),
    ],
    ids=["truncated", "trailing", "short-header", "float-type", "nonzero-magic", "zero-ndim",
         "tiny", "wrong-ndim"],
)
def test_read_idx_refuses_a_damaged_file_and_says_why(tmp_path, mangle, words):
    path = write(tmp_path / "bad-idx3-ubyte.gz", mangle(idx_bytes(np.zeros((2, 3, 2)))))
    with pytest.raises(data.DataError) as caught:
        data.read_idx(path, expected_shape=(2, 3, 2))
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert "re-download" in message  # says what to try


def test_read_idx_refuses_wrong_dimensions(tmp_path):
    path = write(tmp_path / "x.gz", idx_bytes(np.zeros((3, 28, 27))))
    with pytest.raises(data.DataError, match=r"header gives shape \(3, 28, 27\), expected \(None, 28, 28\)"):
        data.read_idx(path, expected_shape=(None, 28, 28))


def test_read_idx_refuses_a_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(1000) % 256))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataError, match="damaged gzip data") as caught:
        data.read_idx(path)
    assert str(path) in str(caught.value)


def test_checksum_is_on_decompressed_bytes(tmp_path):
    raw = idx_bytes(np.arange(12).reshape(3, 4))
    info = info_of(raw, (3, 4))
    a = write(tmp_path / "a.gz", raw)
    b = tmp_path / "b.gz"
    b.write_bytes(gzip.compress(raw, compresslevel=1, mtime=12345))  # another gzip, same bytes
    for path in (a, b):
        np.testing.assert_array_equal(data.read_idx(path, checksum=info), np.arange(12).reshape(3, 4))

    wrong = bytearray(raw)
    wrong[-1] ^= 1  # same size, one pixel off
    path = write(tmp_path / "wrong.gz", bytes(wrong))
    with pytest.raises(data.DataError, match="sha256") as caught:
        data.read_idx(path, checksum=info)
    assert str(path) in str(caught.value) and info.sha256 in str(caught.value)
    with pytest.raises(data.DataError, match="16 bytes once decompressed, expected 24"):
        data.verify_checksum(raw[:16], "short", info)


def test_the_table_is_complete_and_consistent():
    assert set(data.FILES) == {f"{d}/{f}" for d in data.DATASETS for pair in data.SPLITS.values() for f in pair}
    for key, info in data.FILES.items():
        assert info.n_bytes == 4 + 4 * len(info.shape) + int(np.prod(info.shape)), key
        assert len(info.sha256) == 64 and int(info.sha256, 16) >= 0
    assert all(len(names) == 10 for names in data.CLASS_NAMES.values())


def test_import_needs_neither_torch_nor_network():
    code = "import sys, gae_course.data; assert 'torch' not in sys.modules; assert 'tqdm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --------------------------------------------------------------------------- search order


def test_search_order_is_env_then_cache_then_debian(isolated, monkeypatch):
    env_folder, cache, debian = isolated / "env", isolated / "cache" / "data", isolated / "debian"
    monkeypatch.setenv("GAE_COURSE_DATA", str(env_folder))
    names = [description for description, _ in data.search_folders("fashion-mnist")]
    assert names == ["$GAE_COURSE_DATA/fashion-mnist", "user cache", "Debian's dataset-fashion-mnist package"]
    assert [folder for _, folder in data.search_folders("mnist")] == [env_folder / "mnist", cache / "mnist"]

    name = IMAGES
    assert data.find_file("fashion-mnist", name) is None
    write(debian / f"{name}.gz", b"x")
    assert data.find_file("fashion-mnist", name) == debian / f"{name}.gz"
    write(cache / "fashion-mnist" / name, b"x", compress=False)  # a plain copy counts too
    assert data.find_file("fashion-mnist", name) == cache / "fashion-mnist" / name
    write(cache / "fashion-mnist" / f"{name}.gz", b"x")  # .gz is preferred within a folder
    assert data.find_file("fashion-mnist", name) == cache / "fashion-mnist" / f"{name}.gz"
    write(env_folder / "fashion-mnist" / f"{name}.gz", b"x")
    assert data.find_file("fashion-mnist", name) == env_folder / "fashion-mnist" / f"{name}.gz"


def test_load_dataset_prefers_gae_course_data_then_the_cache(isolated, fake_mnist_test, monkeypatch):
    raw = fake_mnist_test
    for name, content in raw.items():
        write(isolated / "cache" / "data" / "mnist" / f"{name}.gz", content)
    # A mirror nobody listens on: the test fails loudly if a download is attempted.
    no_mirror = ["http://127.0.0.1:9/"]
    images, labels = data.load_dataset("mnist", "test", mirrors=no_mirror)
    assert images.shape == (N_FAKE, 28, 28) and labels.shape == (N_FAKE,)

    # The same files, but the env copy of the labels is different and corrupt: it wins the
    # search and is refused, naming the env file (no silent fall-back to the cache copy).
    env_folder = isolated / "env"
    monkeypatch.setenv("GAE_COURSE_DATA", str(env_folder))
    write(env_folder / "mnist" / f"{IMAGES}.gz", raw[IMAGES])
    bad_labels = write(env_folder / "mnist" / f"{LABELS}.gz", raw[LABELS][:-1] + b"\x09")
    with pytest.raises(data.DataError, match="sha256") as caught:
        data.load_dataset("mnist", "test", mirrors=no_mirror)
    assert str(bad_labels) in str(caught.value)

    write(env_folder / "mnist" / f"{LABELS}.gz", raw[LABELS])  # repaired: read again, not cached
    images_env, labels_env = data.load_dataset("mnist", "test", mirrors=no_mirror)
    np.testing.assert_array_equal(images_env, images)
    np.testing.assert_array_equal(labels_env, labels)


def test_loaded_arrays_are_typed_scaled_read_only_and_cached(isolated, fake_mnist_test):
    for name, content in fake_mnist_test.items():
        write(isolated / "cache" / "data" / "mnist" / f"{name}.gz", content)
    images, labels = data.load_dataset("mnist", "test", download=False)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    expected = np.frombuffer(fake_mnist_test[IMAGES][16:], np.uint8).reshape(N_FAKE, 28, 28) / 255
    np.testing.assert_allclose(images, expected, rtol=1e-6)
    np.testing.assert_array_equal(labels, np.arange(N_FAKE) % 10)
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        labels += 1
    again = data.load_dataset("mnist", "test", download=False)
    assert again[0] is images and again[1] is labels


def test_images_and_labels_must_agree_in_number(isolated, monkeypatch):
    images, labels = idx_bytes(np.zeros((3, 28, 28))), idx_bytes(np.zeros(4))
    monkeypatch.setitem(data.FILES, f"mnist/{IMAGES}", info_of(images, (3, 28, 28)))
    monkeypatch.setitem(data.FILES, f"mnist/{LABELS}", info_of(labels, (4,)))
    folder = isolated / "cache" / "data" / "mnist"
    write(folder / f"{IMAGES}.gz", images)
    write(folder / f"{LABELS}.gz", labels)
    with pytest.raises(data.DataError, match="3 images but .* holds 4 labels"):
        data.load_dataset("mnist", "test", download=False)


@pytest.mark.parametrize(("name", "split", "words"), [
    ("emnist", "train", ["'emnist'", "'mnist'", "'fashion-mnist'"]),
    ("mnist", "valid", ["'valid'", "'train'", "'test'"]),
])
def test_unknown_name_or_split_lists_the_valid_ones(name, split, words):
    with pytest.raises(ValueError) as caught:
        data.load_dataset(name, split)
    assert all(word in str(caught.value) for word in words)


# --------------------------------------------------------------------------- downloads


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, mode)``; mode "drop" stops half-way, mode
    "encoded" labels the gzip body ``Content-Encoding: gzip`` (as some static hosts do)."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, mode = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if mode == "encoded":
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if mode == "drop":  # promise the whole body, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, format, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 (free port) in a thread, shut down after the test."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.requests = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _serve(server, prefix, raw, mode="ok", names=(IMAGES, LABELS)):
    for name in names:
        server.routes[f"/{prefix}/{name}.gz"] = (gzip.compress(raw[name]), mode)
    return f"{server.url}/{prefix}/"


def test_download_verifies_renames_and_loads(isolated, fake_mnist_test, server):
    mirror = _serve(server, "good", fake_mnist_test)
    images, labels = data.load_dataset("mnist", "test", mirrors=[f"{server.url}/missing/", mirror])
    assert images.shape == (N_FAKE, 28, 28) and labels.tolist() == list(range(N_FAKE))
    folder = isolated / "cache" / "data" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{IMAGES}.gz", f"{LABELS}.gz"])
    assert server.requests == [f"/missing/{IMAGES}.gz", f"/good/{IMAGES}.gz",
                               f"/missing/{LABELS}.gz", f"/good/{LABELS}.gz"]

    data.clear_cache()
    data.load_dataset("mnist", "test", mirrors=[mirror])  # now from the cache, no request
    assert len(server.requests) == 4


def test_corrupt_download_leaves_nothing(isolated, fake_mnist_test, server):
    wrong = dict(fake_mnist_test)
    pixels = bytearray(wrong[IMAGES])
    pixels[-1] ^= 0xFF  # right size, right header, wrong bytes
    wrong[IMAGES] = bytes(pixels)
    mirror = _serve(server, "corrupt", wrong)
    folder = isolated / "cache" / "data" / "mnist"
    with pytest.raises(data.DataNotFoundError) as caught:
        data.download_file("mnist", IMAGES, mirrors=[mirror], progress=False)
    assert f"{mirror}{IMAGES}.gz" in str(caught.value) and "sha256" in str(caught.value)
    assert list(folder.iterdir()) == []


def test_interrupted_download_leaves_nothing(isolated, fake_mnist_test, server):
    mirror = _serve(server, "drop", fake_mnist_test, mode="drop")
    folder = isolated / "cache" / "data" / "mnist"
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load_dataset("mnist", "test", mirrors=[mirror])
    message = str(caught.value)
    assert "transfer interrupted" in message and f"{mirror}{IMAGES}.gz" in message
    assert "Looked in" in message and str(folder) in message
    assert list(folder.iterdir()) == []


def test_a_bad_mirror_is_skipped_for_the_next(isolated, fake_mnist_test, server):
    not_gzip = f"{server.url}/html/"
    server.routes[f"/html/{IMAGES}.gz"] = (b"<html>moved</html>", "ok")
    dropped = _serve(server, "drop", fake_mnist_test, mode="drop")
    good = _serve(server, "good", fake_mnist_test)
    path = data.download_file("mnist", IMAGES, isolated / "elsewhere", mirrors=[not_gzip, dropped, good])
    assert path == isolated / "elsewhere" / f"{IMAGES}.gz"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert data.read_idx(path, checksum=data.FILES[f"mnist/{IMAGES}"]).shape == (N_FAKE, 28, 28)


def test_a_gzip_sent_with_content_encoding_is_kept_as_sent(isolated, fake_mnist_test, server):
    # A client that undoes the encoding (requests, hence pooch) would save raw IDX bytes
    # under the .gz name; the file must stay the gzip the mirror holds.
    mirror = _serve(server, "encoded", fake_mnist_test, mode="encoded", names=(IMAGES,))
    path = data.download_file("mnist", IMAGES, mirrors=[mirror], progress=False)
    assert path.read_bytes() == server.routes[f"/encoded/{IMAGES}.gz"][0]
    assert data.read_idx(path, checksum=data.FILES[f"mnist/{IMAGES}"]).shape == (N_FAKE, 28, 28)


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_without_a_copy_says_where_it_looked(isolated, fake_mnist_test, server, monkeypatch, how):
    mirror = _serve(server, "good", fake_mnist_test)
    monkeypatch.setenv("GAE_COURSE_DATA", str(isolated / "env"))
    kwargs = {"mirrors": [mirror]}
    if how == "env":
        monkeypatch.setenv("GAE_COURSE_OFFLINE", "1")
    else:
        kwargs["download"] = False
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load_dataset("fashion-mnist", "test", **kwargs)
    message = str(caught.value)
    for where in (isolated / "env" / "fashion-mnist", isolated / "cache" / "data" / "fashion-mnist",
                  isolated / "debian"):
        assert str(where) in message
    for advice in ("switched off", "set GAE_COURSE_DATA", f"fashion-mnist/{IMAGES}.gz",
                   "apt install dataset-fashion-mnist", "copy the four fashion-mnist .gz files"):
        assert advice in message
    assert server.requests == []


def test_offline_message_says_when_gae_course_data_is_unset(isolated, monkeypatch):
    monkeypatch.setenv("GAE_COURSE_OFFLINE", "yes")
    with pytest.raises(data.DataNotFoundError, match=r"\$GAE_COURSE_DATA: not set") as caught:
        data.locate("mnist", LABELS)
    assert "dataset-fashion-mnist" not in str(caught.value)  # Debian ships only Fashion-MNIST


# --------------------------------------------------------------------------- the real files


def _real_data_folder() -> Path:
    folder = Path(os.environ.get("GAE_COURSE_DATA") or REPO.parent / "shared" / "data")
    if not all((folder / name).is_dir() for name in data.DATASETS):
        pytest.skip(f"the real MNIST / Fashion-MNIST files are not in {folder} (set GAE_COURSE_DATA)")
    return folder


@pytest.fixture
def real_data(tmp_path, monkeypatch):
    folder = _real_data_folder()
    monkeypatch.setenv("GAE_COURSE_DATA", str(folder))
    monkeypatch.setenv("GAE_COURSE_OFFLINE", "1")  # a missing real file must not be downloaded
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path / "cache"))
    data.clear_cache()
    yield folder
    data.clear_cache()  # ~220 MB per dataset


@pytest.mark.parametrize(("name", "train_counts"), [
    ("mnist", [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]),
    ("fashion-mnist", [6000] * 10),
])
def test_real_files_load_with_the_published_shapes_and_counts(real_data, name, train_counts):
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = data.load_dataset(name, split)
        assert images.shape == (n, 28, 28) and images.dtype == np.float32
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert images.min() == 0.0 and images.max() == 1.0
        counts = np.bincount(labels, minlength=10)
        assert counts.sum() == n and len(counts) == 10
        if split == "train":
            assert counts.tolist() == train_counts
        else:
            assert counts.min() >= 800


def test_train_validation_split_is_stratified_disjoint_and_repeatable():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    train_idx, val_idx = data.train_validation_split(labels, 100, seed=3)
    assert len(val_idx) == 100 and len(train_idx) == 900
    assert np.intersect1d(train_idx, val_idx).size == 0
    np.testing.assert_array_equal(np.bincount(labels[val_idx]), [10, 20, 30, 40])
    again = data.train_validation_split(labels, 100, seed=3)[1]
    np.testing.assert_array_equal(val_idx, again)
    with pytest.raises(ValueError, match="n_validation must lie between 1 and 999"):
        data.train_validation_split(labels, 1000)


@pytest.mark.parametrize("n_validation", [1, 6, 999, 1000, 5999, 6000, 6001])
def test_train_validation_split_has_exactly_the_size_asked_for(n_validation):
    # MNIST's class counts: rounding each class's share on its own gave 5 999 images for 6 000.
    labels = np.repeat(np.arange(10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    train_idx, val_idx = data.train_validation_split(labels, n_validation)
    assert len(val_idx) == n_validation and len(train_idx) == len(labels) - n_validation
    shares = np.bincount(labels[val_idx], minlength=10)
    exact = n_validation * np.bincount(labels) / len(labels)
    assert np.all(np.abs(shares - exact) < 1), "each class's share is its proportion, rounded"
