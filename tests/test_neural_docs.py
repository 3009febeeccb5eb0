"""docs/neural-networks.md names every network and every hyperparameter it takes."""

from __future__ import annotations

from mlrm import algorithms
from mlrm.algorithms import torch_params
from tests.toolkit.files import ROOT

DOC = (ROOT / "docs" / "neural-networks.md").read_text()


def test_every_network_and_hyperparameter_is_documented() -> None:
    networks = [n for n in algorithms.names() if algorithms.requirement_of(n) == "torch"]
    assert networks
    for name in networks:
        assert f"| `{name}` |" in DOC, name
    tables = (torch_params.MLP, torch_params.RECURRENT, torch_params.CNN1D, torch_params.AUTOENCODER, torch_params.DBN)
    for table in tables:
        for key in table:
            assert f"`{key}`" in DOC, key
