"""Hyperparameters of the torch adapters: one table, checked before training.

Torch-free on purpose: the tables and checks are plain data and jsonschema,
so the docs and `mlrm validate` can describe them; only the adapters that use
them import torch.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from mlrm.algorithms.base import Hyperparameter

ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"]
OPTIMIZERS = ["adam", "adamw", "sgd"]
DEVICES = ["auto", "cpu", "cuda"]


def _hp(name: str, default: Any, description: str, **schema: Any) -> Hyperparameter:
    return Hyperparameter(name, default, description, schema)


def _units(default: list[int], what: str, min_items: int = 1) -> Hyperparameter:
    return _hp(
        "layers",
        default,
        f"{what}, one entry per layer, e.g. {default}.",
        type="array",
        items={"type": "integer", "minimum": 1, "maximum": 65536},
        minItems=min_items,
        maxItems=64,
    )


ACTIVATION = _hp("activation", "relu", f"Activation after each hidden layer: one of {', '.join(ACTIVATIONS)}.",
                 enum=ACTIVATIONS)  # fmt: skip
DROPOUT = _hp("dropout", 0.0, "Share of units dropped during training, 0 (none) to below 1, e.g. 0.2.",
              type="number", minimum=0, exclusiveMaximum=1)  # fmt: skip
BATCH_NORM = _hp("batch_norm", False, "Batch normalisation after each hidden layer: true or false.", type="boolean")

# Training settings every torch adapter shares.
TRAINING: list[Hyperparameter] = [
    _hp("optimizer", "adam", f"Optimizer: one of {', '.join(OPTIMIZERS)}.", enum=OPTIMIZERS),
    _hp("learning_rate", 0.001, "Step size of the optimizer, a number above 0, e.g. 0.001.",
        type="number", exclusiveMinimum=0, maximum=10),
    _hp("momentum", 0.0, "Momentum of optimizer: sgd, 0 to below 1, e.g. 0.9.",
        type="number", minimum=0, exclusiveMaximum=1),
    _hp("weight_decay", 0.0, "L2 penalty on the weights, 0 or more, e.g. 0.0001.", type="number", minimum=0),
    _hp("batch_size", 32, "Rows (or windows) per training step, an integer of 1 or more, e.g. 32.",
        type="integer", minimum=1, maximum=1_000_000),
    _hp("epochs", 50, "Most passes over the training data, an integer of 1 or more.",
        type="integer", minimum=1, maximum=100_000),
    _hp("patience", 10, "Stop early when the validation loss has not improved for this many epochs "
        "(and keep the best epoch's weights); null trains every epoch.",
        type=["integer", "null"], minimum=1),
    _hp("validation_fraction", 0.1, "Share of the training data held back to watch the validation loss, "
        "0 to 0.5 (0: no validation, needs patience: null).", type="number", minimum=0, maximum=0.5),
    _hp("device", "auto", "Where to train: auto (a CUDA GPU if torch sees one, else the CPU), cpu or cuda. "
        "Predictions always run on the CPU.", enum=DEVICES),
    _hp("threads", 1, "CPU threads torch may use while training, an integer of 1 or more; null: torch's default "
        "(one per core). 1 suits small networks best, and a CPU shared with other work.",
        type=["integer", "null"], minimum=1, maximum=1024),
]  # fmt: skip

THRESHOLD = _hp("threshold_quantile", 0.99,
                "Quantile of the training data's reconstruction error above which a row is an anomaly, "
                "above 0 and below 1, e.g. 0.99 (about 1% of normal rows flagged).",
                type="number", exclusiveMinimum=0, exclusiveMaximum=1)  # fmt: skip
KERNEL = _hp("kernel_size", 5, "Length of each convolution kernel in records, an integer of 1 or more, e.g. 5.",
             type="integer", minimum=1, maximum=1024)  # fmt: skip
POOL = _hp("pool", 2, "Max-pooling size after each convolution layer (1: no pooling).",
           type="integer", minimum=1, maximum=64)  # fmt: skip
PRETRAIN = [
    _hp("pretrain_epochs", 10, "Contrastive-divergence epochs per restricted Boltzmann machine (0: no pre-training).",
        type="integer", minimum=0, maximum=100_000),
    _hp("pretrain_learning_rate", 0.01, "Step size of the pre-training, a number above 0, e.g. 0.01.",
        type="number", exclusiveMinimum=0, maximum=10),
    _hp("cd_steps", 1, "Gibbs steps of contrastive divergence (CD-k), an integer of 1 or more.",
        type="integer", minimum=1, maximum=100),
]  # fmt: skip


def table(*specs: Hyperparameter, epochs: int = 50) -> dict[str, Hyperparameter]:
    """Architecture specs first, then the shared training specs (with this family's epochs default)."""
    out = {s.name: s for s in specs}
    for s in TRAINING:
        out[s.name] = Hyperparameter(s.name, epochs, s.description, s.schema) if s.name == "epochs" else s
    return out


MLP = table(_units([64, 32], "Units of each hidden layer", 0), ACTIVATION, DROPOUT, BATCH_NORM, epochs=100)
RECURRENT = table(_units([64], "Units of each stacked recurrent layer"), DROPOUT, epochs=30)
CNN1D = table(_units([32, 64], "Filters of each convolution layer"), KERNEL, POOL, ACTIVATION, DROPOUT, BATCH_NORM,
              epochs=30)  # fmt: skip
AUTOENCODER = table(_units([32, 8], "Units of each encoder layer, the last one the bottleneck (the decoder mirrors it)"),
                    ACTIVATION, DROPOUT, BATCH_NORM, THRESHOLD, epochs=100)  # fmt: skip
DBN = table(_units([64, 32], "Hidden units of each stacked restricted Boltzmann machine"), *PRETRAIN, DROPOUT,
            epochs=100)  # fmt: skip


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float, str, list)):
        return repr(value)
    return f"a value of type {type(value).__name__}"


def check(specs: dict[str, Hyperparameter], params: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with params against specs, each naming the key and the fix."""
    problems: list[tuple[str, str]] = []
    for key, value in params.items():
        spec = specs.get(key)
        if spec is None:
            problems.append((key, f"unknown hyperparameter '{key}'. Known: {', '.join(specs)}."))
            continue
        error = next(iter(jsonschema.Draft202012Validator(spec.schema).iter_errors(value)), None)
        if error is not None:
            problems.append((key, f"'{key}' cannot be {_shown(value)}. Expected: {spec.description}"))
    if problems:
        return problems
    merged = {**{k: s.default for k, s in specs.items()}, **params}
    if merged["patience"] is not None and merged["validation_fraction"] == 0:
        key = "patience" if "patience" in params else "validation_fraction"
        problems.append((key, "early stopping (patience) watches a validation split, but validation_fraction is 0. "
                              "Set validation_fraction: 0.1, or patience: null to train every epoch."))  # fmt: skip
    if merged["momentum"] and merged["optimizer"] != "sgd":
        problems.append(("momentum", f"momentum applies to optimizer: sgd only, not {merged['optimizer']}. "
                                     "Remove momentum or set optimizer: sgd."))  # fmt: skip
    return problems


# mlrm sets these itself: name -> the fix to tell the user.
RESERVED = {key: "mlrm sets it from training.seed; set `training.seed` instead" for key in ("seed", "random_state")}

# The table of each torch registry entry: the adapters train with it, and `mlrm validate` and the
# training service check a torch config set against it without importing torch (about 200 MB).
SPECS: dict[str, dict[str, Hyperparameter]] = {
    "mlp_classifier": MLP, "mlp_regressor": MLP, "autoencoder": AUTOENCODER, "dbn_classifier": DBN,
    "lstm_classifier": RECURRENT, "gru_classifier": RECURRENT, "lstm_forecaster": RECURRENT,
    "gru_forecaster": RECURRENT, "cnn1d_classifier": CNN1D,
}  # fmt: skip


def check_params(name: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem with torch entry `name`'s hyperparameters; torch is imported only to ask about CUDA."""
    reserved = [(k, f"'{k}' is not set here: {RESERVED[k]}") for k in params if k in RESERVED]
    if reserved:
        return reserved
    problems = check(SPECS[name], params)
    if not problems and params.get("device") == "cuda":
        import torch  # only a config set that asks for a GPU pays for it here

        if not torch.cuda.is_available():
            problems.append(("device", "device: cuda, but torch sees no CUDA GPU on this machine. "
                                       "Set device: auto (uses a GPU when there is one) or cpu."))  # fmt: skip
    return problems
