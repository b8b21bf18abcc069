"""Training end to end on tiny real data: metrics streamed, evaluation stored, model saved."""
import numpy as np
import pytest

from core.train.callbacks import batch_interval
from core.config import make_config
from core.data.ingest import ingest
from core.store.facade import RunStore
from core.train.run import execute, queue_run, train
from tests.idx_helpers import write_mnist_dir


@pytest.fixture(scope="module")
def small_h5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx")
    write_mnist_dir(folder, n_train=512, n_test=128)
    return ingest(folder, folder / "mnist.h5").path


@pytest.fixture
def rs(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    yield store
    store.close()


def test_one_epoch_run_streams_metrics_and_saves_everything(rs, small_h5):
    config = make_config("mlp-128-64", epochs=1, name="tiny")
    run = train(rs, config, small_h5)
    assert run.status == "completed", run.error
    assert run.n_params == 109_386 and run.epoch == 1 and run.steps_per_epoch == 15  # 461 digits / 32
    epoch = rs.metric_history(run.id, "epoch")
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(epoch["key"])
    assert set(epoch["epoch"]) == {1}
    batch = rs.metric_history(run.id, "batch")
    assert len(batch[batch.key == "loss"]) == 15 // batch_interval(15) and batch["value"].notna().all()
    ev = rs.evaluation(run.id)
    assert np.array(ev.confusion).sum() == 128 == ev.n
    assert set(ev.report) == {str(d) for d in range(10)}
    assert len(rs.misclassified(run.id)) == round(128 * (1 - run.test_accuracy))
    assert (rs.run_dir(run.id) / "model.keras").stat().st_size > 0
    assert run.best_val_accuracy is not None and run.best_val_epoch == 1


def test_exception_inside_fit_marks_failed_and_keeps_partial_metrics(rs, small_h5):
    run_id = queue_run(rs, make_config("mlp-128-64", epochs=3), small_h5)
    run = rs.claim_run("test", run_id)
    def explode():  # checked after every flush: fails once the first epoch's rows are committed
        if not rs.metric_history(run_id, "epoch").empty:
            raise RuntimeError("disk on fire")
        return False
    final = execute(rs, run, small_h5, should_stop=explode)
    assert final.status == "failed" and "disk on fire" in final.error
    assert set(rs.metric_history(run_id, "epoch")["epoch"]) == {1}
    assert not (rs.run_dir(run_id) / "model.keras").exists()


def test_stop_request_cancels_within_a_logging_window(rs, small_h5):
    run_id = queue_run(rs, make_config("mlp-128-64", epochs=5), small_h5)
    final = execute(rs, rs.claim_run("test", run_id), small_h5, should_stop=lambda: True)
    assert final.status == "cancelled" and final.epoch == 1
    assert rs.evaluation(run_id) is None


def test_a_stop_after_the_last_batch_still_completes_the_trained_run(rs, small_h5):
    run_id = queue_run(rs, make_config("mlp-128-64", epochs=2), small_h5)
    # true from the flush at the end of the last epoch: every batch has run, the model is trained
    final = execute(rs, rs.claim_run("test", run_id), small_h5, should_stop=lambda: rs.get_run(run_id).epoch == 2)
    assert final.status == "completed" and final.epoch == 2 and final.test_accuracy is not None


def test_bad_config_never_creates_a_run(rs, small_h5):
    with pytest.raises(Exception, match="batch_size"):
        queue_run(rs, make_config("mlp-128-64").__class__(architecture="mlp-128-64", batch_size=10_000), small_h5)
    assert rs.list_runs().empty


def test_custom_cnn_with_schedule_early_stopping_and_augment(rs, small_h5):
    layers = [{"type": "Conv2D", "filters": 4, "kernel": 3, "activation": "relu"}, {"type": "MaxPooling2D", "pool": 2},
              {"type": "BatchNormalization"}, {"type": "Flatten"}, {"type": "Dense", "units": 16, "activation": "gelu"}]
    config = make_config("custom", layers=layers, epochs=2, batch_size=64, lr_schedule="exponential",
                         early_stopping=1, augment=True, optimizer="sgd-momentum", learning_rate=0.05, train_limit=300)
    run = train(rs, config, small_h5)
    assert run.status == "completed", run.error
    lrs = rs.metric_history(run.id, "epoch", keys=["learning_rate"])["value"].tolist()
    assert lrs[0] == pytest.approx(0.05) and (len(lrs) == 1 or lrs[1] == pytest.approx(0.045))


def test_cosine_schedule_lowers_the_rate_along_a_half_cosine(rs, small_h5):
    from core.model.compile import cosine_rate
    assert [cosine_rate(0.01, e, 4) for e in range(4)] == pytest.approx([0.01, 0.0085355, 0.005, 0.0014645], rel=1e-4)
    config = make_config("mlp-128-64", epochs=3, batch_size=64, lr_schedule="cosine", learning_rate=0.02,
                         train_limit=300)
    run = train(rs, config, small_h5)
    assert run.status == "completed", run.error
    lrs = rs.metric_history(run.id, "epoch", keys=["learning_rate"])["value"].tolist()
    assert lrs == pytest.approx([0.02, 0.015, 0.005])  # what each epoch trained with, as logged
