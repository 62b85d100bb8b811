"""A training run's settings (`pba.runs.training_config.TrainConfig`): one typed record,
config.json's flat
object and back."""

from __future__ import annotations

import json

import pytest

from pba.core.errors import PBAError
from pba.core.precision import resolve_precision
from pba.runs.training_config import RUN_KEYS, TrainConfig, new_config, resumed_config
from pba.training.recipes import Recipe


def test_a_config_goes_to_config_json_and_back_unchanged(tmp_path) -> None:
    config = new_config({"dataset": "reduced_cifar10", "model": "wrn_10_1", "epochs": 3,
                         "seed": 4, "image_size": 48}, device="cpu", data_dir=tmp_path)
    doc = json.loads(json.dumps(config.to_dict()))
    assert set(RUN_KEYS) <= doc.keys() and "recipe" not in doc  # one flat object, as before
    # 'auto' resolved on this machine (bf16 where the CPU has it natively)
    assert (doc["epochs"], doc["seed"], doc["precision"]) == (3, 4, resolve_precision("auto",
                                                                                      "cpu"))
    assert TrainConfig.from_dict(doc) == config
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert resumed_config(tmp_path, {"epochs": 3}) == config
    with pytest.raises(PBAError, match="--epochs 4 differs from the run"):
        resumed_config(tmp_path, {"epochs": 4})


def test_replace_reaches_the_recipe() -> None:
    config = TrainConfig("cifar10", "wrn_10_1", Recipe(epochs=2, lr=0.1, weight_decay=0))
    changed = config.replace(baseline="flip", seed=3)
    assert (changed.recipe.baseline, changed.seed, changed.recipe.epochs) == ("flip", 3, 2)
    assert config.recipe.baseline is None  # frozen: the original is untouched


def test_unknown_or_missing_settings_are_refused(tmp_path) -> None:
    with pytest.raises(PBAError, match="unknown training settings: colour"):
        new_config({"dataset": "cifar10", "model": "wrn_10_1", "colour": 1})
    with pytest.raises(PBAError, match=r"is not a pba train config \(no model"):
        TrainConfig.from_dict({"dataset": "cifar10", "epochs": 1})
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(PBAError, match="is not a pba train config"):
        resumed_config(tmp_path)
