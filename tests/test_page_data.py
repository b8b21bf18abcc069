"""pages/data.py through AppTest: the loaded dataset's views, and ingesting one from the page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.data.dataset import dataset_info, load_dataset
from tests.helpers import chart_figures
from tests.idx_helpers import write_mnist_dir

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "data.py")


def open_page(**session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def captions_of_images(at: AppTest) -> list[list[str]]:
    """The captions of each st.image call, in page order."""
    return [[img.caption for img in e.proto.imgs] for e in at.main if type(e).__name__ == "Image"]


def test_loaded_dataset_shows_splits_labels_samples_and_class_means(app_env):
    data = load_dataset(app_env.data_path)
    at = open_page()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Training digits"] == f"{len(data.y_train):,}" and metrics["Test digits"] == f"{len(data.y_test):,}"
    bars = json.dumps(chart_figures(at)[0])
    assert 'train (' in bars and 'test (' in bars
    samples, means = captions_of_images(at)
    assert len(samples) == 40 and means == [str(c) for c in range(10)]
    for caption in samples:  # "label · #index" matches the stored label of that digit
        label, index = caption.split(" · #")
        assert int(label) == data.y_train[int(index)]


def test_label_filter_and_test_split(app_env):
    data = load_dataset(app_env.data_path)
    at = open_page(data_label=3, data_split="test")
    assert not at.exception
    samples = captions_of_images(at)[0]
    assert samples and len(samples) == int(np.sum(data.y_test == 3))
    assert all(caption.startswith("3 · #") and data.y_test[int(caption.split("#")[1])] == 3 for caption in samples)


def test_shuffle_draws_other_digits(app_env):
    at = open_page()
    before = captions_of_images(at)[0]
    at.button(key="data_shuffle").click().run()
    assert captions_of_images(at)[0] != before


def test_without_a_dataset_ingests_from_a_folder_with_progress(app_env, monkeypatch, tmp_path):
    target = tmp_path / "fresh" / "mnist.h5"
    monkeypatch.setenv("DIGITLAB_DATA", str(target))
    write_mnist_dir(tmp_path / "idx", n_train=40, n_test=10)
    at = open_page()
    assert not at.exception
    assert "No dataset" in at.info[0].value and not at.metric
    at.text_input(key="data_src").input(str(tmp_path / "idx"))
    at.button(key="data_ingest").click().run()
    assert not at.exception and not at.error
    assert dataset_info(target).n_train == 40
    assert "Wrote" in at.success[0].value
    assert {m.label: m.value for m in at.metric}["Training digits"] == "40"


def test_bad_source_is_one_error_and_writes_nothing(app_env, monkeypatch, tmp_path):
    target = tmp_path / "fresh" / "mnist.h5"
    monkeypatch.setenv("DIGITLAB_DATA", str(target))
    at = open_page()
    at.text_input(key="data_src").input(str(tmp_path / "nowhere"))
    at.button(key="data_ingest").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "no such file or directory" in at.error[0].value
    assert not target.exists()


def test_offline_sample_shows_the_banner_and_how_to_get_full_mnist(app_env, monkeypatch, tmp_path):
    target = tmp_path / "sample.h5"
    monkeypatch.setenv("DIGITLAB_DATA", str(target))  # DIGITLAB_OFFLINE=1 (app_env): no download attempt
    at = open_page()
    at.button(key="data_ingest").click().run()
    assert not at.exception and not at.error
    assert dataset_info(target).offline_sample
    assert "NOT full MNIST" in at.warning[0].value  # what ingest said, as a warning, not a success
    banner = at.warning[1].value
    assert "offline 5,000-digit MNIST sample" in banner and "python -m core ingest --from" in banner
    assert at.expander[0].proto.expanded  # "Replace the dataset" is open for the sample
    assert "the offline 5,000-digit sample (not full MNIST)" in at.markdown[0].value


def test_populated_store_page_opens(populated_env):
    at = open_page()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Training digits"] == "300"


def test_a_text_file_as_source_is_one_clear_line_without_unsafe_advice(app_env, monkeypatch, tmp_path):
    """Issue 27, item 7: numpy called a text file "pickled (object) data" and suggested allow_pickle."""
    target = tmp_path / "fresh" / "mnist.h5"
    monkeypatch.setenv("DIGITLAB_DATA", str(target))
    (tmp_path / "notes.txt").write_text("these are not digits\n")
    at = open_page()
    at.text_input(key="data_src").input(str(tmp_path / "notes.txt"))
    at.button(key="data_ingest").click().run()
    assert not at.exception and len(at.error) == 1
    message = at.error[0].value
    assert "not a readable .npz file" in message and "zip archive" in message and "pickle" not in message.lower()
    assert not target.exists()


def test_offline_ingest_with_an_empty_source_says_it_in_one_line_beside_the_banner(app_env, monkeypatch, tmp_path):
    """Issue 27, items 8 and 13: a 5-line warning stood on the banner that says nearly the same; the
    ingest time was a raw ISO timestamp."""
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "sample.h5"))
    at = open_page()
    at.button(key="data_ingest").click().run()
    first, banner = at.warning[0].value, at.warning[1].value
    assert "\n" not in first and "NOT full MNIST" in first and "make ingest" not in first
    assert "make ingest FROM=DIR" in banner  # how to get full MNIST: said once, by the banner
    loaded = at.markdown[0].value
    assert "ingested " in loaded and "T" not in loaded.split("ingested ")[1].split(" into")[0]
