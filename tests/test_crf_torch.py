"""The PyTorch CRF backend agrees with pydensecrf (the reference) on >= 99 % of voxels of the same inputs."""
import argparse
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from nnunet_ppm.inference import predict_cli
from nnunet_ppm.postprocessing.crf_params import CRFParams
from nnunet_ppm.postprocessing.crf_pydensecrf import mean_field_pydensecrf
from nnunet_ppm.postprocessing.crf_torch import _foreground_marginals, mean_field_torch
from nnunet_ppm.postprocessing.dense_crf import dense_crf
from nnunet_ppm.postprocessing.pipeline import postprocess_probabilities
from synthetic_postprocessing_cases import blurred_noisy_probabilities, ct_of, dice, kidney_truth, small_case


def _network_like(truth: np.ndarray, spacing, seed: int = 3) -> np.ndarray:
    """Confident inside each region, uncertain at borders: softmax of 30 * (blurred one-hot - 0.5) + smooth noise."""
    rng = np.random.default_rng(seed)
    logits = np.stack([30 * (gaussian_filter((truth == c).astype(np.float32), 1.5 / np.asarray(spacing)) - 0.5)
                       + 20 * gaussian_filter(rng.normal(0, 1, truth.shape), 2.0) for c in range(3)])
    probabilities = np.exp(logits - logits.max(0))
    return (probabilities / probabilities.sum(0)).astype(np.float32)


@pytest.mark.parametrize("kind", ["blurred_noisy", "network_like"])
def test_torch_backend_agrees_with_pydensecrf(kind):
    truth, ct, probabilities, spacing = small_case(seed=2)
    if kind == "network_like":
        probabilities = _network_like(truth, spacing)
    params = CRFParams()
    image = np.clip(ct, *params.hu_window)
    reference = mean_field_pydensecrf(probabilities, image, spacing, params)
    labels = mean_field_torch(probabilities, image, spacing, params)
    changed = reference != probabilities.argmax(0)
    assert changed.sum() > 50, "the CRF must change labels for the comparison to mean something"
    assert np.mean(labels == reference) >= 0.99
    assert np.mean(labels[changed] == reference[changed]) >= 0.95


@pytest.mark.parametrize("noise_hu", [0.0, 30.0])
def test_torch_backend_agrees_with_pydensecrf_on_uncertain_probabilities(noise_hu):
    """The worst case for speed: probabilities uncertain almost everywhere (the benchmark's "uncertain"), CT noise."""
    spacing = (0.8, 0.7, 0.7)
    truth = kidney_truth((80, 72, 64), spacing)
    image = np.clip(ct_of(truth, seed=4, noise_hu=noise_hu), *CRFParams().hu_window)
    probabilities = blurred_noisy_probabilities(truth, noise=0.3, seed=5)
    assert np.mean(probabilities.max(0) < 0.9) > 0.6, "most voxels must be uncertain"
    reference = mean_field_pydensecrf(probabilities, image, spacing, CRFParams())
    labels = mean_field_torch(probabilities, image, spacing, CRFParams())
    changed = reference != probabilities.argmax(0)
    assert changed.sum() > 10_000
    assert np.mean(labels == reference) >= 0.99
    assert np.mean(labels[changed] == reference[changed]) >= 0.95


def test_same_labels_on_every_run_and_thread_setting():
    truth, ct, probabilities, spacing = small_case(seed=3)
    image = np.clip(ct, *CRFParams().hu_window)
    previous = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            runs.append(mean_field_torch(probabilities, image, spacing, CRFParams()))
    finally:
        torch.set_num_threads(previous)
    assert torch.get_num_threads() == previous
    assert all(np.array_equal(runs[0], run) for run in runs[1:])
    assert not np.array_equal(runs[0], probabilities.argmax(0)), "the CRF must change labels for this to mean something"


def test_torch_backend_beats_argmax_through_dense_crf():
    truth, ct, probabilities, spacing = small_case()
    refined = dense_crf(probabilities, ct, spacing, backend="torch")
    for label in (1, 2):
        assert dice(truth, refined, label) > dice(truth, probabilities.argmax(0), label) + 0.05


def test_certain_voxels_keep_their_label_and_all_certain_skips_the_crf():
    truth, ct, _, spacing = small_case()
    one_hot = np.stack([(truth == c) for c in range(3)]).astype(np.float32)
    labels = mean_field_torch(one_hot, np.clip(ct, -200, 500), spacing, CRFParams())
    assert np.array_equal(labels, truth)


def test_foreground_marginals_with_and_without_the_overflow_shift_equal_the_softmax():
    """The background's logit is 0: marginals of (labels - 1, points) logit differences, shifted or not."""
    differences = torch.tensor([[0.0, 2.0, -3.0, 30.0], [1.0, -1.0, 5.0, 29.0]])
    expected = torch.softmax(torch.cat([torch.zeros(1, 4), differences]), 0)[1:]
    for shift in (False, True):
        assert torch.allclose(_foreground_marginals(differences.clone(), shift), expected, rtol=1e-6, atol=1e-7)
    huge = torch.tensor([[200.0], [199.0]])        # exp(200) overflows float32: only the shifted form is finite
    assert torch.allclose(_foreground_marginals(huge, True), torch.tensor([[1 / (1 + math.exp(-1))],
                                                                           [1 / (1 + math.exp(1))]]))


def test_the_torch_crf_runs_on_the_device_that_predict_is_given(monkeypatch):
    """`nnunet_ppm predict -device cpu` on a machine with a GPU keeps the CRF on the CPU (the GPU may be busy
    training): -device reaches the CRF, and the CRF uses it instead of the GPU it sees."""
    parser = argparse.ArgumentParser()
    predict_cli.add_arguments(parser)
    settings = predict_cli.postprocessing_of(parser.parse_args(["-i", "in", "-o", "out", "-d", "1", "-c", "3d_fullres",
                                                                "-device", "cpu", "--no-lcc"]))
    assert settings.crf_device == "cpu"
    truth, ct, probabilities, spacing = small_case(seed=2)
    expected = postprocess_probabilities(probabilities, ct, spacing, settings)
    gpu_here = torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    if not gpu_here:  # without a device the CRF reaches for the GPU, which this machine lacks
        with pytest.raises((AssertionError, RuntimeError)):
            postprocess_probabilities(probabilities, ct, spacing, dataclasses.replace(settings, crf_device=None))
    np.testing.assert_array_equal(postprocess_probabilities(probabilities, ct, spacing, settings), expected)
