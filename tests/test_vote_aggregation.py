"""Majority-vote sub-volume aggregation against a hand-computed case, through nnU-Net's sliding window."""
import numpy as np
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ppm.inference.ppm_predictor import PPMPredictor
from nnunet_ppm.postprocessing.vote_aggregation import TIE_BREAK, SubVolumeVotes

# softmax probabilities the fake network outputs at each slice position of its 4-slice sub-volume
PROBABILITIES_BY_POSITION = np.array([
    [0.1, 0.6, 0.3],    # position 0 votes 1
    [0.2, 0.3, 0.5],    # position 1 votes 2
    [0.2, 0.45, 0.35],  # position 2 votes 1
    [0.7, 0.1, 0.2],    # position 3 votes 0
], dtype=np.float32)

# 8 slices, sub-volumes of 4 slices, step 0.25 -> sub-volumes start at slices 0, 1, 2, 3, 4.
#  slice  positions seen  votes (0/1/2)  summed probabilities (0/1/2)  label
#    0     0              0/1/0                                      1
#    1     0,1            0/1/1          0.3/0.9/0.8                   1 (tie, higher sum)
#    2     0,1,2          0/2/1                                      1
#    3     0,1,2,3        1/2/1                                      1
#    4     0,1,2,3        1/2/1                                      1
#    5     1,2,3          1/1/1          1.1/0.85/1.05                 0 (three-way tie, higher sum)
#    6     2,3            1/1/0          0.9/0.55/0.55                 0 (tie, higher sum)
#    7     3              1/0/0                                      0
HAND_COMPUTED_LABELS = [1, 1, 1, 1, 1, 0, 0, 0]
HAND_COMPUTED_VOTES = [[0, 1, 0], [0, 1, 1], [0, 2, 1], [1, 2, 1], [1, 2, 1], [1, 1, 1], [1, 1, 0], [1, 0, 0]]


class PositionDependentNetwork(torch.nn.Module):
    """Outputs log(PROBABILITIES_BY_POSITION) for every sub-volume, whatever its content."""

    def __init__(self):
        super().__init__()
        logits = torch.from_numpy(np.log(PROBABILITIES_BY_POSITION)).T  # (classes, positions)
        self.register_buffer("logits", logits[:, :, None, None].expand(3, 4, 2, 2).contiguous())

    def forward(self, x):
        return self.logits[None].expand(x.shape[0], -1, -1, -1, -1)


def _vote_predictor() -> PPMPredictor:
    plans = {"plans_name": "vote_test", "configurations": {"3d_fullres": {
        "patch_size": [4, 2, 2], "architecture": {"network_class_name": "unused", "arch_kwargs": {},
                                                  "_kw_requires_import": []}}}}
    dataset_json = {"labels": {"background": 0, "kidney": 1, "tumor": 2}, "file_ending": ".nii.gz"}
    plans_manager = PlansManager(plans)
    network = PositionDependentNetwork()
    predictor = PPMPredictor(tile_step_size=0.25, use_gaussian=True, use_mirroring=False,
                             device=torch.device("cpu"), allow_tqdm=False, aggregation="vote")
    predictor.manual_initialization(network, plans_manager, plans_manager.get_configuration("3d_fullres"),
                                    [network.state_dict()], dataset_json, "none", None)
    return predictor


def test_vote_matches_hand_computed_case_through_nnunet_sliding_window():
    predictor = _vote_predictor()
    log_fractions = predictor.predict_sliding_window_return_logits(torch.zeros((1, 8, 2, 2)))
    labels = log_fractions.argmax(0)
    assert labels.shape == (8, 2, 2)
    assert labels[:, 0, 0].tolist() == HAND_COMPUTED_LABELS
    assert torch.all(labels == labels[:, :1, :1])
    fractions = torch.softmax(log_fractions[:, :, 0, 0], 0).T.numpy()
    votes = np.array(HAND_COMPUTED_VOTES, dtype=np.float32)
    np.testing.assert_allclose(fractions, votes / votes.sum(1, keepdims=True), atol=TIE_BREAK)
    np.testing.assert_allclose(fractions.sum(1), 1, rtol=1e-5)


def test_nnunet_averaging_gives_other_labels_on_the_same_case():
    predictor = _vote_predictor()
    predictor.aggregation, predictor.use_gaussian = "gaussian", False  # nnU-Net's path, plain mean of logits
    labels = predictor.predict_sliding_window_return_logits(torch.zeros((1, 8, 2, 2))).argmax(0)
    assert labels[:, 0, 0].tolist() != HAND_COMPUTED_LABELS


def test_votes_accumulate_per_sub_volume():
    votes = SubVolumeVotes(3, (3, 1, 1), torch.device("cpu"))
    def sub_volume(probabilities):  # two slices with the same class probabilities
        return torch.log(torch.tensor(probabilities))[:, None, None, None].expand(3, 2, 1, 1)

    votes.add(sub_volume([0.5, 0.3, 0.2]), (slice(0, 2), slice(0, 1), slice(0, 1)))
    votes.add(sub_volume([0.1, 0.8, 0.1]), (slice(1, 3), slice(0, 1), slice(0, 1)))
    assert votes.votes[:, :, 0, 0].T.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    np.testing.assert_allclose(votes.probability_sums[:, 1, 0, 0].numpy(), [0.6, 1.1, 0.3], rtol=1e-6)
