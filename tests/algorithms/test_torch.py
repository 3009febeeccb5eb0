"""The torch adapters: conformance (windows included), determinism, early
stopping, checks that name the key and the fix, and safe loading."""

from __future__ import annotations

import io
import pickle
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

from mlrm import algorithms
from mlrm.errors import StateError

if TYPE_CHECKING:  # importing it needs torch, which the importorskip below may find missing
    from mlrm.algorithms.torch_adapter import TorchAlgorithm

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TORCH = [name for name in algorithms.names() if algorithms.requirement_of(name) == "torch"]
FAST = {"epochs": 3, "batch_size": 16, "layers": [8]}


def data(adapter: Any, seed: int = 0, n: int = 90) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """Rows (n x 5) or windows (n x 12 x 3) with a learnable target for the adapter's task."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12, 3)) if adapter.sequence else rng.normal(size=(n, 5))
    signal = X[:, -3:, 0].mean(axis=1) if adapter.sequence else X[:, 0] + X[:, 1]
    if adapter.task == "classification":
        return X, (signal > 0).astype(np.int64) + (signal > 1), 3
    if adapter.task == "regression":
        return X, 100 * signal + 20, None
    return X, None, None


def fitted(name: str, seed: int = 3, **params: Any) -> tuple[Any, np.ndarray]:
    adapter = algorithms.get(name)
    X, y, n_classes = data(adapter)
    return adapter(**{**FAST, **params}).fit(X, y, n_classes=n_classes, seed=seed), X


def torch_adapter(name: str) -> type[TorchAlgorithm]:
    """The registered class as what it is: a torch adapter, with its hyperparameters and attributes."""
    return cast("type[TorchAlgorithm]", algorithms.get(name))


def state(model: Any) -> dict[str, Any]:
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def test_every_promised_network_is_registered_lazily() -> None:
    assert set(TORCH) == {
        "mlp_classifier", "mlp_regressor", "lstm_classifier", "gru_classifier", "lstm_forecaster",
        "gru_forecaster", "cnn1d_classifier", "dbn_classifier", "autoencoder",
    }  # fmt: skip
    assert {n for n in TORCH if algorithms.takes_windows(n)} == {n for n in TORCH if torch_adapter(n).sequence}


def test_every_network_has_the_table_validate_checks_it_against() -> None:
    """mlrm validate reads torch_params.SPECS without torch; each adapter trains with its entry."""
    from mlrm.algorithms import torch_params

    assert set(torch_params.SPECS) == set(TORCH)
    for name in TORCH:
        adapter = torch_adapter(name)
        assert algorithms.hyperparameters(name) == adapter.hyperparameters() == torch_params.SPECS[name]
        assert algorithms.reserved(name) == adapter.reserved
        assert algorithms.check(name, {"epochs": 0}) == adapter.check({"epochs": 0}) != []


@pytest.mark.parametrize("name", TORCH)
def test_conformance_fit_predict_dump_load_identical(name: str) -> None:
    adapter = algorithms.get(name)
    assert adapter.name == name and adapter.task == algorithms.task_of(name) and adapter.requires == "torch"
    assert adapter.check({}) == []
    model, X = fitted(name)
    before = model.predict(X[:17])
    assert len(before.values) == 17
    if adapter.task == "classification":
        assert before.probabilities is not None and before.probabilities.shape == (17, 3)
        np.testing.assert_allclose(before.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    if adapter.task == "anomaly":
        assert before.scores is not None and set(np.unique(before.values)) <= {0, 1}
    files = model.dump()
    assert set(files) == {"model.pt", "network.yaml"} and all(isinstance(v, bytes) for v in files.values())
    fresh = adapter(**FAST)
    fresh.load(files)
    after = fresh.predict(X[:17])
    np.testing.assert_array_equal(before.values, after.values)
    for a, b in ((before.probabilities, after.probabilities), (before.scores, after.scores)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", TORCH)
def test_badly_typed_hyperparameter_is_named_with_the_fix(name: str) -> None:
    problems = algorithms.get(name).check({"layers": "64,32", "learning_rate": -1})
    assert [key for key, _ in problems] == ["layers", "learning_rate"]
    assert "e.g. [" in problems[0][1] and "above 0" in problems[1][1]


@pytest.mark.parametrize("name", ["mlp_classifier", "lstm_classifier", "dbn_classifier"])
def test_same_seed_same_data_gives_identical_parameters(name: str) -> None:
    extra = {"dropout": 0.3, "batch_norm": True} if name == "mlp_classifier" else {"dropout": 0.3}
    a, _ = fitted(name, seed=5, **extra)
    b, _ = fitted(name, seed=5, **extra)
    c, _ = fitted(name, seed=6, **extra)
    sa, sb, sc = state(a), state(b), state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.dump() == b.dump()


def test_fit_leaves_the_callers_torch_settings_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    fitted("mlp_classifier", threads=1)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory


def test_training_reports_epochs_losses_and_early_stopping() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 2, 200)  # nothing to learn: validation loss stalls
    reports: list[tuple[str, float | None, str]] = []
    adapter = torch_adapter("mlp_classifier")(layers=[32], epochs=200, patience=2, learning_rate=0.01)
    adapter.fit(X, y, n_classes=2, seed=0, progress=lambda *r: reports.append(r))
    messages = [m for stage, _, m in reports if stage == "train"]
    assert messages[0].startswith("epoch 1/200: loss ") and ", validation loss " in messages[0]
    assert "early stopping after epoch" in messages[-1] and "keeping epoch" in messages[-1]
    history = adapter.network["history"]
    assert history["stopped_early"] and history["epochs"] < 200 and history["best_epoch"] == history["epochs"] - 2
    assert reports[0][0] == "fit" and reports[-1] == ("fit", 1.0, reports[-1][2])


def test_dbn_pretrains_each_machine_before_fine_tuning() -> None:
    reports: list[str] = []
    model, X = fitted("dbn_classifier", layers=[8, 4], pretrain_epochs=2)
    adapter = torch_adapter("dbn_classifier")(layers=[8, 4], pretrain_epochs=2, epochs=1)
    adapter.fit(X, np.zeros(len(X), dtype=np.int64), n_classes=2, progress=lambda s, f, m: reports.append(f"{s}: {m}"))
    pre = [r for r in reports if r.startswith("pretrain")]
    assert pre[0].startswith("pretrain: RBM 1/2 epoch 1/2: reconstruction error") and "RBM 2/2 epoch 2/2" in pre[-1]
    assert reports.index(pre[-1]) < next(i for i, r in enumerate(reports) if r.startswith("train"))


def test_classifier_and_regressor_learn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = torch_adapter("mlp_classifier")(
        layers=[16], epochs=30, patience=None, validation_fraction=0, learning_rate=0.01
    )
    assert (clf.fit(X, y, n_classes=2).predict(X).values == y).mean() > 0.95
    target = 1000 * X[:, 1] + 5000  # in watts: the adapter scales it for training
    reg = torch_adapter("mlp_regressor")(
        layers=[16], epochs=60, learning_rate=0.01, patience=None, validation_fraction=0
    )
    error = reg.fit(X, target).predict(X).values - target
    assert np.sqrt(np.mean(error**2)) < 100


def test_forecaster_predicts_every_step_of_the_horizon() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 10, 2))
    y = np.stack([X[:, -1, 0], X[:, -1, 0] * 2, X[:, -1, 1]], axis=1)
    model = algorithms.get("gru_forecaster")(**FAST).fit(X, y, seed=1)
    assert model.predict(X[:4]).values.shape == (4, 3)
    fresh = algorithms.get("gru_forecaster")(**FAST)
    fresh.load(model.dump())
    np.testing.assert_array_equal(fresh.predict(X[:4]).values, model.predict(X[:4]).values)


def test_autoencoder_threshold_is_the_quantile_of_training_error() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    model = torch_adapter("autoencoder")(layers=[8, 3], epochs=20, threshold_quantile=0.95).fit(X, None, seed=0)
    assert 0.03 < model.predict(X).values.mean() < 0.07
    far = rng.normal(size=(20, 6)) * 8
    assert model.predict(far).values.mean() > 0.9


def test_windows_of_another_shape_are_refused() -> None:
    model, X = fitted("lstm_classifier")
    with pytest.raises(ValueError, match="takes windows"):
        model.predict(X[:, -1])
    with pytest.raises(ValueError, match="trained on 12 x 3"):
        model.predict(X[:, :5])


def test_checks_name_key_and_fix() -> None:
    mlp = algorithms.get("mlp_classifier")
    assert mlp.check({"validation_fraction": 0}) == [
        ("validation_fraction", "early stopping (patience) watches a validation split, but validation_fraction is 0. "
                                "Set validation_fraction: 0.1, or patience: null to train every epoch.")
    ]  # fmt: skip
    assert mlp.check({"validation_fraction": 0, "patience": None}) == []
    assert mlp.check({"momentum": 0.9})[0][0] == "momentum"
    assert mlp.check({"momentum": 0.9, "optimizer": "sgd"}) == []
    assert "one of adam, adamw, sgd" in mlp.check({"optimizer": "rmsprop"})[0][1]
    assert mlp.check({"dropout": 1.0})[0][0] == "dropout"
    assert mlp.check({"seed": 1}) == [("seed", "'seed' is not set here: mlrm sets it from training.seed; "
                                               "set `training.seed` instead")]  # fmt: skip
    if not torch.cuda.is_available():
        assert "Set device: auto" in mlp.check({"device": "cuda"})[0][1]


def test_load_refuses_weights_that_do_not_fit_or_carry_code(capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = fitted("mlp_classifier")
    files = model.dump()
    other = torch_adapter("mlp_classifier")(layers=[9])
    with pytest.raises(StateError, match="do not fit the network service.yaml describes"):
        other.load(files)

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return print, ("code ran",)

    for blob in (pickle.dumps({"0.weight": Payload()}), _torch_saved({"0.weight": Payload()})):
        with pytest.raises(StateError, match="Retrain it"):
            algorithms.get("mlp_classifier")(**FAST).load({**files, "model.pt": blob})
    assert "code ran" not in capsys.readouterr().out
    with pytest.raises(StateError, match="network.yaml"):
        algorithms.get("mlp_classifier")(**FAST).load({**files, "network.yaml": b"inputs: -1\n"})
    with pytest.raises(StateError, match="network.yaml"):
        algorithms.get("mlp_classifier")(**FAST).load({**files, "network.yaml": b"inputs: [1\n"})
    with pytest.raises(StateError, match="lacks network.yaml"):
        algorithms.get("mlp_classifier")(**FAST).load({"model.pt": files["model.pt"]})


def _torch_saved(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
