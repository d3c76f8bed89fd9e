"""MNIST and Fashion-MNIST as NumPy arrays: find the files, download them, verify, read.

The IDX format
--------------
Both datasets ship as four IDX files (LeCun et al., "The MNIST database"), each gzipped
as ``<name>.gz``. An IDX file is a header followed by the raw values, big-endian:

========  ===============  ==================================================
offset    bytes            meaning
========  ===============  ==================================================
0         ``00 00``        two zero bytes
2         ``08``           element type: 0x08 is unsigned byte (the only one read here)
3         ``N``            number of dimensions
4         4 per dimension  the size of each dimension, as unsigned 32-bit integers
4 + 4N    prod(sizes)      the values, one byte each, last dimension fastest
========  ===============  ==================================================

So ``train-images-idx3-ubyte`` starts ``00 00 08 03``, then 60000, 28, 28, then
60000 * 28 * 28 pixels: 16 + 47040000 = 47040016 bytes. :func:`read_idx` checks every
part of that header and that the byte count is exactly header + values: a truncated file,
or one with bytes left over, is refused with a message naming the file; nothing is
reshaped to fit.

Verification
------------
:data:`FILES` holds the size and SHA-256 of the *decompressed* bytes of all eight files,
so any gzip of the right bytes is accepted (re-compressing a file does not break it).
Every file is verified each time it is read from disk; hashing 47 MB takes a few
hundredths of a second, less than decompressing it.

Where the files are looked for, in order
----------------------------------------
1. ``$GAE_COURSE_DATA/<dataset>/`` when ``GAE_COURSE_DATA`` is set (tests and CI point it
   at ``../shared/data``);
2. the user cache, ``gae_course.config.cache_root() / "data" / <dataset>`` (by default
   ``~/.cache/gae_course/data/<dataset>/``);
3. for Fashion-MNIST only, ``/usr/share/datasets/fashion-mnist/``, where Debian's package
   ``dataset-fashion-mnist`` installs the four ``.gz`` files;
4. otherwise a download from the public mirrors in :data:`MIRRORS` into the user cache.

In each folder ``<name>.gz`` is tried first, then the uncompressed ``<name>``. A download
is written to ``<name>.gz.part-<random>`` beside its final place, checked (complete
transfer, gzip, size, SHA-256), and only then renamed, so an interrupted or corrupt
download never leaves a file that looks valid. ``GAE_COURSE_OFFLINE=1`` (or
``download=False``) switches downloads off. Nothing touches the network at import.

Why not pooch
-------------
``pooch.retrieve`` also downloads to a temporary file and renames it, but the hash it checks
before the rename (``known_hash``) is of the downloaded file, the gzip, while :data:`FILES`
pins the decompressed bytes. With ``known_hash=None`` it checks nothing, and by default
prints to stderr an advice to pin the gzip's hash. A pooch processor runs only after the
file has its final name, so verifying there would let an unchecked file sit where a valid
one is looked for; downloading under a part name and renaming here would keep what pooch
was meant to replace. Its transport, requests, also undoes a ``Content-Encoding: gzip``
header, so such a mirror's ``.gz`` would be saved decompressed; urllib keeps the bytes as
sent (``test_data.py`` pins that). What would move to pooch is only :func:`_fetch`'s loop.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import secrets
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import config

DATASETS = ("mnist", "fashion-mnist")

# split -> (images file, labels file)
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


class FileInfo(NamedTuple):
    """What a verified IDX file holds: its shape, and size and SHA-256 once decompressed."""

    shape: tuple[int, ...]
    n_bytes: int
    sha256: str


# Sizes and SHA-256 of the decompressed bytes (COURSE.md, section "Data").
FILES: dict[str, FileInfo] = {
    "mnist/train-images-idx3-ubyte": FileInfo(
        (60000, 28, 28), 47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "mnist/train-labels-idx1-ubyte": FileInfo(
        (60000,), 60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "mnist/t10k-images-idx3-ubyte": FileInfo(
        (10000, 28, 28), 7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "mnist/t10k-labels-idx1-ubyte": FileInfo(
        (10000,), 10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    "fashion-mnist/train-images-idx3-ubyte": FileInfo(
        (60000, 28, 28), 47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "fashion-mnist/train-labels-idx1-ubyte": FileInfo(
        (60000,), 60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "fashion-mnist/t10k-images-idx3-ubyte": FileInfo(
        (10000, 28, 28), 7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "fashion-mnist/t10k-labels-idx1-ubyte": FileInfo(
        (10000,), 10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

# Base URLs tried in order; a file's URL is base + "<name>.gz". Tests point these at 127.0.0.1.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

# System-wide copies: Debian's dataset-fashion-mnist puts the four .gz files here.
DEBIAN_FOLDERS: dict[str, Path] = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
}

DOWNLOAD_TIMEOUT_S = 30.0  # per blocking socket operation, not for the whole file
_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
_BAD_FILE_HINT = (
    "Replace it with a good copy; if it was downloaded into the cache, delete it and run "
    "again to re-download it."
)


class DataError(ValueError):
    """A data file is missing, damaged or not what it claims to be.

    The message names the file, says what is wrong with it and what to try.
    """


class DataNotFoundError(DataError):
    """No copy of a data file was found, and downloading it was off or failed."""


# --------------------------------------------------------------------------- reading


def _read_raw(path: Path) -> bytes:
    """The file's bytes, decompressed when it starts with the gzip magic number."""
    with open(path, "rb") as fh:
        if fh.read(2) != _GZIP_MAGIC:
            fh.seek(0)
            return fh.read()
        fh.seek(0)
        try:
            with gzip.GzipFile(fileobj=fh) as unzipped:
                return unzipped.read()
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{path}: damaged gzip data ({err}); the file is probably truncated. "
                + _BAD_FILE_HINT
            ) from err


def parse_idx(raw: bytes, path: str | os.PathLike = "<bytes>", expected_shape=None) -> np.ndarray:
    """Decode the bytes of an IDX file of unsigned bytes, checking its header and length.

    Parameters
    ----------
    raw : bytes
        The decompressed file.
    path : str or path-like
        Only used to name the file in error messages.
    expected_shape : tuple of (int or None), optional
        The shape the header must give; ``None`` in a position accepts any size there.

    Returns
    -------
    values : ndarray of shape dims, dtype uint8
        A read-only view of ``raw``, with ``dims`` read from the header.

    Raises
    ------
    DataError
        Wrong magic number or element type, unexpected dimensions, too few or too many bytes.
    """
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header. {_BAD_FILE_HINT}")
    zero0, zero1, type_code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0 or type_code != _IDX_UBYTE or ndim == 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x000008NN "
            f"(two zero bytes, type 0x08 = unsigned byte, NN >= 1 dimensions). "
            f"This is not an IDX file of unsigned bytes. {_BAD_FILE_HINT}"
        )
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DataError(
            f"{path}: truncated header: {ndim} dimensions need {header_bytes} header bytes, "
            f"the file has {len(raw)}. {_BAD_FILE_HINT}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_bytes])
    if expected_shape is not None and not _shape_matches(dims, expected_shape):
        raise DataError(
            f"{path}: header gives shape {dims}, expected {tuple(expected_shape)}. "
            f"Is it the right file? {_BAD_FILE_HINT}"
        )
    n_bytes = header_bytes + math.prod(dims)
    if len(raw) != n_bytes:
        fault = "truncated" if len(raw) < n_bytes else "followed by trailing bytes"
        raise DataError(
            f"{path}: {fault}: the header's shape {dims} needs {n_bytes} bytes, "
            f"the file has {len(raw)}. {_BAD_FILE_HINT}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)


def _shape_matches(dims, expected_shape) -> bool:
    return len(dims) == len(expected_shape) and all(
        want is None or want == got for got, want in zip(dims, expected_shape)
    )


def verify_checksum(raw: bytes, path: str | os.PathLike, expected: FileInfo) -> None:
    """Check the decompressed bytes' size and SHA-256 against a row of :data:`FILES`.

    Raises
    ------
    DataError
        When the size or the digest differs; the message names ``path``.
    """
    if len(raw) != expected.n_bytes:
        raise DataError(
            f"{path}: {len(raw)} bytes once decompressed, expected {expected.n_bytes}. "
            + _BAD_FILE_HINT
        )
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected.sha256:
        raise DataError(
            f"{path}: sha256 of the decompressed bytes is {digest}, expected "
            f"{expected.sha256}: the file is corrupt or a different file. {_BAD_FILE_HINT}"
        )


def read_idx(path: str | os.PathLike, expected_shape=None, *, checksum: FileInfo | None = None) -> np.ndarray:
    """Read a gzipped (or plain) IDX file of unsigned bytes.

    Parameters
    ----------
    path : str or path-like
        The file; gzip is recognised by its magic number, not by the name.
    expected_shape : tuple of (int or None), optional
        The shape the header must give (``None`` accepts any size in that position).
    checksum : FileInfo, optional
        When given, the decompressed bytes must have this size and SHA-256.

    Returns
    -------
    values : ndarray of shape dims, dtype uint8
        Read-only; ``dims`` come from the file's header.

    Raises
    ------
    DataError
        The message names the file and what is wrong with it.
    """
    path = Path(path)
    raw = _read_raw(path)
    values = parse_idx(raw, path, expected_shape)  # structural faults give the clearest message
    if checksum is not None:
        verify_checksum(raw, path, checksum)
    return values


# --------------------------------------------------------------------------- finding


def cache_folder(dataset: str) -> Path:
    """The user-cache folder of a dataset: ``cache_root() / "data" / dataset``."""
    return config.cache_root() / "data" / dataset


def search_folders(dataset: str) -> list[tuple[str, Path]]:
    """The folders searched for a dataset's files, in order, each with a description.

    Returns
    -------
    folders : list of (str, Path)
        ``$GAE_COURSE_DATA/<dataset>`` (when set), the user cache, then Debian's folder
        (Fashion-MNIST only). The download, when needed, goes into the user cache.
    """
    folders = []
    env = os.environ.get("GAE_COURSE_DATA")
    if env:
        folders.append(("$GAE_COURSE_DATA/" + dataset, Path(env).expanduser().absolute() / dataset))
    folders.append(("user cache", cache_folder(dataset)))
    if dataset in DEBIAN_FOLDERS:
        folders.append((f"Debian's dataset-{dataset} package", DEBIAN_FOLDERS[dataset]))
    return folders


def find_file(dataset: str, name: str) -> Path | None:
    """The first copy of ``name`` (as ``name.gz``, then plain) in :func:`search_folders`, or None."""
    for _, folder in search_folders(dataset):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def downloads_allowed(download: bool = True) -> bool:
    """False when ``download`` is False or ``GAE_COURSE_OFFLINE`` is set to a true value."""
    return download and not config.env_flag("GAE_COURSE_OFFLINE")


def locate(dataset: str, name: str, *, download: bool = True, mirrors: list[str] | None = None,
           timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Path of a local copy of ``<dataset>/<name>``, downloading it into the cache if needed.

    Raises
    ------
    DataNotFoundError
        No copy was found and downloading was off or failed; the message lists every
        folder searched, every mirror tried, and how to provide the files.
    """
    found = find_file(dataset, name)
    if found is not None:
        return found
    failures = None
    if downloads_allowed(download):
        path, failures = _try_mirrors(dataset, name, cache_folder(dataset), mirrors, timeout, True)
        if path is not None:
            return path
    raise DataNotFoundError(_not_found_message(dataset, name, failures))


def _not_found_message(dataset: str, name: str, failures: list[str] | None) -> str:
    lines = [f"Could not find {dataset}/{name}.gz. Looked in, in order:"]
    if not os.environ.get("GAE_COURSE_DATA"):
        lines.append("  - $GAE_COURSE_DATA: not set")
    for description, folder in search_folders(dataset):
        state = "no such folder" if not folder.is_dir() else f"no {name}.gz or {name} there"
        lines.append(f"  - {description}: {folder} ({state})")
    if failures is None:
        lines.append("Downloading is switched off (GAE_COURSE_OFFLINE is set, or download=False).")
    else:
        lines.append("Downloading failed from every mirror:")
        lines.extend(f"  - {failure}" for failure in failures)
    lines.append("To provide the files, do one of:")
    lines.append(f"  - set GAE_COURSE_DATA to a folder holding {dataset}/{name}.gz and the other "
                 f"{dataset} files (for example export GAE_COURSE_DATA=/path/to/shared/data);")
    lines.append(f"  - copy the four {dataset} .gz files into {cache_folder(dataset)}/;")
    if dataset in DEBIAN_FOLDERS:
        lines.append(f"  - install Debian's package: sudo apt install dataset-{dataset};")
    lines.append("  - or go online and run again (unset GAE_COURSE_OFFLINE, download=True).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- downloading


def download_file(dataset: str, name: str, folder: str | os.PathLike | None = None, *,
                  mirrors: list[str] | None = None, timeout: float = DOWNLOAD_TIMEOUT_S,
                  progress: bool = True) -> Path:
    """Download ``<name>.gz`` of a dataset from the first mirror that gives a verified copy.

    Parameters
    ----------
    dataset, name : str
        A row of :data:`FILES` is ``f"{dataset}/{name}"``.
    folder : path-like, optional
        Where ``<name>.gz`` goes; defaults to :func:`cache_folder`.
    mirrors : list of str, optional
        Base URLs, tried in order; defaults to ``MIRRORS[dataset]``.
    timeout : float
        Seconds allowed for each blocking socket operation.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    path : Path
        The verified ``<folder>/<name>.gz``.

    Raises
    ------
    DataNotFoundError
        Every mirror failed; the message lists each URL and why.
    """
    folder = cache_folder(dataset) if folder is None else Path(folder)
    path, failures = _try_mirrors(dataset, name, folder, mirrors, timeout, progress)
    if path is None:
        raise DataNotFoundError(
            f"Could not download {dataset}/{name}.gz into {folder}:\n"
            + "\n".join(f"  - {failure}" for failure in failures)
        )
    return path


def _try_mirrors(dataset, name, folder, mirrors, timeout, progress) -> tuple[Path | None, list[str]]:
    """Try each mirror in turn; returns (verified path or None, one line per failure)."""
    info = FILES[f"{dataset}/{name}"]
    mirrors = MIRRORS[dataset] if mirrors is None else mirrors
    final = folder / f"{name}.gz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return None, [f"could not create the cache folder {folder}: {err}"]
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + f"/{name}.gz"
        # Same folder as the final file, so that os.replace is an atomic rename.
        part = folder / f"{name}.gz.part-{secrets.token_hex(4)}"
        try:
            _fetch(url, part, timeout, progress)
            _check_download(part, info)
            os.replace(part, final)
            return final, failures
        except urllib.error.HTTPError as err:
            err.close()  # it holds the response's socket
            failures.append(f"{url}: HTTP {err.code} {err.reason}")
        except (OSError, http.client.HTTPException, DataError) as err:
            failures.append(f"{url}: {err}")
        finally:
            part.unlink(missing_ok=True)
    return None, failures


def _fetch(url: str, dest: Path, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``dest``; raise DataError when the transfer ends early."""
    from tqdm.auto import tqdm  # here, not at import: the module stays light

    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        received = 0
        with open(dest, "wb") as out, tqdm(total=expected, unit="B", unit_scale=True,
                                            desc=dest.name.split(".part-")[0],
                                            disable=not progress) as bar:
            # read(n) returns b"" when the server closes early, without an error:
            # the byte count below is what catches an interrupted transfer.
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise DataError(f"transfer interrupted: received {received} of {expected} bytes")


def _check_download(part: Path, info: FileInfo) -> None:
    """A download must be gzip, and decompress to an IDX file with the right size and digest."""
    with open(part, "rb") as fh:
        if fh.read(2) != _GZIP_MAGIC:
            raise DataError("not a gzip file (the server sent something else, perhaps an error page)")
    read_idx(part, info.shape, checksum=info)


# --------------------------------------------------------------------------- loading

# (dataset, split, file fingerprints, table rows) -> (images, labels), all read-only
_LOADED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def load_dataset(name: str, split: str = "train", *, download: bool = True,
                 mirrors: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split of MNIST or Fashion-MNIST, verified.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    split : {"train", "test"}
        60000 and 10000 images.
    download : bool
        Download missing files into the user cache (also off when ``GAE_COURSE_OFFLINE=1``).
    mirrors : list of str, optional
        Base URLs to download from instead of ``MIRRORS[name]``.

    Returns
    -------
    images : ndarray of shape (n_images, 28, 28), dtype float32
        Pixel values in [0, 1] (the file's bytes divided by 255).
    labels : ndarray of shape (n_images,), dtype int64
        Class indices into ``CLASS_NAMES[name]``.

    Notes
    -----
    The arrays are cached in-process, so a second call costs nothing, and are therefore
    read-only (``flags.writeable`` is False): in-place changes raise ``ValueError``. Use
    ``images.copy()`` for a private copy; :func:`clear_cache` frees the memory.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {', '.join(map(repr, DATASETS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits are {', '.join(map(repr, SPLITS))}")
    image_name, label_name = SPLITS[split]
    image_path = locate(name, image_name, download=download, mirrors=mirrors)
    label_path = locate(name, label_name, download=download, mirrors=mirrors)
    image_info, label_info = FILES[f"{name}/{image_name}"], FILES[f"{name}/{label_name}"]
    key = (name, split, _fingerprint(image_path), _fingerprint(label_path), image_info, label_info)
    if key not in _LOADED:
        _LOADED[key] = _decode(name, image_path, image_info, label_path, label_info)
    return _LOADED[key]


def _fingerprint(path: Path) -> tuple:
    """Identifies a file's current version: a replaced or edited file is read again."""
    stat = path.stat()
    return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _decode(name, image_path, image_info, label_path, label_info) -> tuple[np.ndarray, np.ndarray]:
    """Read and verify both files; return read-only float32 images and int64 labels."""
    raw_images = read_idx(image_path, image_info.shape, checksum=image_info)
    raw_labels = read_idx(label_path, label_info.shape, checksum=label_info)
    if len(raw_images) != len(raw_labels):
        raise DataError(
            f"{image_path} holds {len(raw_images)} images but {label_path} holds "
            f"{len(raw_labels)} labels: the two files do not belong together."
        )
    n_classes = len(CLASS_NAMES[name])
    if raw_labels.size and raw_labels.max() >= n_classes:
        raise DataError(f"{label_path}: label {raw_labels.max()} is not below {n_classes} classes. "
                        + _BAD_FILE_HINT)
    images = raw_images.astype(np.float32)
    images /= 255  # a division, not * (1 / 255), so that 255 maps to exactly 1.0
    labels = raw_labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def clear_cache() -> None:
    """Forget the arrays :func:`load_dataset` keeps in memory."""
    _LOADED.clear()


def train_validation_split(labels, n_validation: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/validation split of a training set.

    Every setting a chapter chooses (architecture, number of components, regularisation) is
    chosen on the validation part; the test split is looked at once, at the end.

    Parameters
    ----------
    labels : ndarray of shape (n,)
        Class labels of the whole training set.
    n_validation : int
        Size of the validation part, shared between classes in proportion to their counts.
    seed : int

    Returns
    -------
    train_idx, val_idx : ndarray of int64
        Disjoint, sorted, together covering ``range(n)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {labels.shape}.")
    if not 0 < n_validation < len(labels):
        raise ValueError(
            f"n_validation must lie between 1 and {len(labels) - 1}; got {n_validation}."
        )
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Shares in proportion to the class counts, rounded by largest remainder (Hamilton's
    # method) so that they add up to exactly n_validation: rounding each share on its own
    # can lose or gain an image (MNIST's 60 000 labels gave 5 999 for 6 000).
    exact = n_validation * counts / len(labels)
    takes = np.floor(exact).astype(np.int64)
    short = n_validation - int(takes.sum())
    takes[np.argsort(-(exact - takes), kind="stable")[:short]] += 1
    val = []
    for label, take in zip(classes, takes):
        members = np.flatnonzero(labels == label)
        val.append(rng.choice(members, size=int(take), replace=False))
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx
