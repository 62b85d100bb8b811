"""Precision: bf16 only where the device has it natively, and a bf16 CPU run that learns."""

from __future__ import annotations

import pytest
import torch

from pba.core import precision as precision_module
from pba.core.errors import PBAError
from pba.core.precision import memory_format, resolve_precision
from pba.data import load_dataset
from pba.training import loop as training
from pba.training.augment import make_augment
from pba.training.recipes import Recipe

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_where_the_cpu_has_it(monkeypatch, native) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32"
    if native:
        assert resolve_precision("bf16", CPU) == "bf16"
    else:
        with pytest.raises(PBAError, match="neither AVX512-BF16 nor AMX.*--precision fp32"):
            resolve_precision("bf16", CPU)


def test_cpu_detection_follows_torchs_feature_probes(monkeypatch) -> None:
    for avx512_bf16, amx, expected in [(True, False, True), (False, True, True),
                                       (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v,
                            raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert precision_module.cpu_has_native_bf16() is expected


@pytest.mark.parametrize("native", [True, False])
def test_cuda_resolution_asks_for_native_bf16(monkeypatch, native) -> None:
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    cuda = torch.device("cuda")
    assert resolve_precision("auto", cuda) == ("bf16" if native else "fp32")
    assert asked == [False]
    if not native:
        with pytest.raises(PBAError, match="no native bf16 support"):
            resolve_precision("bf16", cuda)


def test_unknown_and_unresolved_precisions_are_refused() -> None:
    with pytest.raises(PBAError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", CPU)
    with pytest.raises(PBAError, match="resolve 'auto'"):
        Recipe(epochs=1, lr=0.1, weight_decay=0, precision="auto")


def test_layouts_follow_precision_and_device(monkeypatch) -> None:
    assert memory_format("bf16", "cpu") == torch.channels_last
    assert memory_format("bf16", "cuda") == torch.channels_last
    assert memory_format("fp32", "cuda") == torch.contiguous_format
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    assert memory_format("fp32", "cpu") == torch.channels_last  # oneDNN's faster layout
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert memory_format("fp32", "cpu") == torch.contiguous_format


def test_a_bf16_cpu_run_learns_real_images(data_dir) -> None:
    # bf16 runs on every CPU (emulated where it is not native), so this runs everywhere.
    data = load_dataset("reduced_cifar10", data_dir, train_size=1024, val_size=0)
    recipe = Recipe(epochs=4, lr=0.1, weight_decay=5e-4, precision="bf16")
    state = training.init_state("wrn_10_1", 10, recipe, seed=0, device="cpu")
    assert next(state.model.parameters()).dtype == torch.float32  # autocast, not a bf16 model
    augment = make_augment("baseline", data, recipe)
    state, metrics = training.train(state, data.train, 4, augment, recipe, mean=data.mean,
                                    std=data.std)
    losses = [m["train_loss"] for m in metrics]
    assert losses[-1] < losses[0] - 0.2, losses
    test = data.test
    scores = training.evaluate(state.model, type(test)(test.images[:2000], test.labels[:2000]),
                               mean=data.mean, std=data.std, precision="bf16")
    # 2,000 test images: chance is 0.10 with a standard deviation of 0.0067.
    assert scores["accuracy"] > 0.2, scores
