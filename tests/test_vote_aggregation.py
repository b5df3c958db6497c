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


# Two folds that disagree, for voting over folds x tiles (same 8 slices, 5 sub-volumes per fold).
FOLD_A_PROBABILITIES = np.array([[0.05, 0.5, 0.45]] * 4, dtype=np.float32)  # every position votes 1, 2 runner-up
FOLD_B_PROBABILITIES = np.array([
    [0.39, 0.01, 0.6],  # positions 0 and 2 vote 2
    [0.6, 0.01, 0.39],  # positions 1 and 3 vote 0; class 1 is always the least likely
    [0.39, 0.01, 0.6],
    [0.6, 0.01, 0.39],
], dtype=np.float32)
#  slice  positions seen  votes of A   votes of B   votes (0/1/2)  summed probabilities (0/1/2)  label
#    0     0              0/1/0        0/0/1        0/1/1          0.44/0.51/1.05                 2 (tie, higher sum)
#    1     0,1            0/2/0        1/0/1        1/2/1                                         1
#    2     0,1,2          0/3/0        1/0/2        1/3/2                                         1
#    3     0,1,2,3        0/4/0        2/0/2        2/4/2                                         1
#    4     0,1,2,3        0/4/0        2/0/2        2/4/2                                         1
#    5     1,2,3          0/3/0        2/0/1        2/3/1                                         1
#    6     2,3            0/2/0        1/0/1        1/2/1                                         1
#    7     3              0/1/0        1/0/0        1/1/0          0.65/0.51/0.84                 0 (tie, higher sum)
# Averaging each fold's vote fractions as logits (a geometric mean) gives 2 or 0 in slices 1-6 instead: a class
# without a single vote in one fold loses, however many votes it has in the other.
TWO_FOLD_LABELS = [2, 1, 1, 1, 1, 1, 1, 0]
TWO_FOLD_VOTES = [[0, 1, 1], [1, 2, 1], [1, 3, 2], [2, 4, 2], [2, 4, 2], [2, 3, 1], [1, 2, 1], [1, 1, 0]]
# Each fold alone: A votes 1 everywhere. B votes 2 in slices 0 and 2 (2 of 1 and 2 of 3 votes) and 0 in slices 5
# and 7 (2 of 3, 1 of 1); slices 1, 3, 4, 6 tie 0 and 2 in votes and in summed probability; B never votes 1.
FOLD_A_LABELS = [1] * 8
FOLD_B_UNTIED_LABELS = {0: 2, 2: 2, 5: 0, 7: 0}

# nnU-Net's plain mean of the logits log(PROBABILITIES_BY_POSITION) over the positions each slice sees:
#  slice  positions  mean log p (0/1/2)     label
#    0     0          -2.30/-0.51/-1.20     1
#    1     0,1        -1.96/-0.86/-0.95     1
#    2     0,1,2      -1.84/-0.84/-0.98     1
#    3     0,1,2,3    -1.47/-1.20/-1.14     2
#    4     0,1,2,3    -1.47/-1.20/-1.14     2
#    5     1,2,3      -1.19/-1.44/-1.12     2
#    6     2,3        -0.98/-1.55/-1.33     0
#    7     3          -0.36/-2.30/-1.61     0
MEAN_LOGIT_LABELS = [1, 1, 1, 2, 2, 2, 0, 0]


class PositionDependentNetwork(torch.nn.Module):
    """Outputs log(probabilities by position) (positions x classes) for every sub-volume, whatever its content."""

    def __init__(self, probabilities_by_position: np.ndarray = PROBABILITIES_BY_POSITION):
        super().__init__()
        logits = torch.from_numpy(np.log(probabilities_by_position)).T  # (classes, positions)
        self.register_buffer("logits", logits[:, :, None, None].expand(3, 4, 2, 2).contiguous())

    def forward(self, x):
        return self.logits[None].expand(x.shape[0], -1, -1, -1, -1)


def _vote_predictor(*folds: np.ndarray) -> PPMPredictor:
    """A vote predictor whose folds (one network's parameters each) are position-dependent networks."""
    plans = {"plans_name": "vote_test", "configurations": {"3d_fullres": {
        "patch_size": [4, 2, 2], "architecture": {"network_class_name": "unused", "arch_kwargs": {},
                                                  "_kw_requires_import": []}}}}
    dataset_json = {"labels": {"background": 0, "kidney": 1, "tumor": 2}, "file_ending": ".nii.gz"}
    plans_manager = PlansManager(plans)
    parameters = [PositionDependentNetwork(fold).state_dict() for fold in folds or (PROBABILITIES_BY_POSITION,)]
    predictor = PPMPredictor(tile_step_size=0.25, use_gaussian=True, use_mirroring=False,
                             device=torch.device("cpu"), allow_tqdm=False, aggregation="vote")
    predictor.manual_initialization(PositionDependentNetwork(), plans_manager,
                                    plans_manager.get_configuration("3d_fullres"), parameters, dataset_json, "none",
                                    None)
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


def test_votes_are_counted_over_folds_and_tiles():
    predictor = _vote_predictor(FOLD_A_PROBABILITIES, FOLD_B_PROBABILITIES)
    log_fractions = predictor.predict_logits_from_preprocessed_data(torch.zeros((1, 8, 2, 2)))
    assert log_fractions.shape == (3, 8, 2, 2)
    assert log_fractions.argmax(0)[:, 0, 0].tolist() == TWO_FOLD_LABELS
    fractions = torch.softmax(log_fractions[:, :, 0, 0], 0).T.numpy()
    votes = np.array(TWO_FOLD_VOTES, dtype=np.float32)
    np.testing.assert_allclose(fractions, votes / votes.sum(1, keepdims=True), atol=TIE_BREAK)


def test_each_fold_alone_gives_other_labels_than_both_together():
    fold_labels = [_vote_predictor(fold).predict_logits_from_preprocessed_data(torch.zeros((1, 8, 2, 2)))
                   .argmax(0)[:, 0, 0].tolist() for fold in (FOLD_A_PROBABILITIES, FOLD_B_PROBABILITIES)]
    assert fold_labels[0] == FOLD_A_LABELS != TWO_FOLD_LABELS
    assert {z: fold_labels[1][z] for z in FOLD_B_UNTIED_LABELS} == FOLD_B_UNTIED_LABELS
    assert 1 not in fold_labels[1], "fold B alone never votes 1, both folds together do in slices 1-6"


def test_nnunet_averaging_gives_other_labels_on_the_same_case():
    predictor = _vote_predictor()
    predictor.aggregation, predictor.use_gaussian = "gaussian", False  # nnU-Net's path, plain mean of logits
    labels = predictor.predict_sliding_window_return_logits(torch.zeros((1, 8, 2, 2))).argmax(0)
    assert labels[:, 0, 0].tolist() == MEAN_LOGIT_LABELS != HAND_COMPUTED_LABELS


def test_votes_accumulate_per_sub_volume():
    votes = SubVolumeVotes(3, (3, 1, 1), torch.device("cpu"))
    def sub_volume(probabilities):  # two slices with the same class probabilities
        return torch.log(torch.tensor(probabilities))[:, None, None, None].expand(3, 2, 1, 1)

    votes.add(sub_volume([0.5, 0.3, 0.2]), (slice(0, 2), slice(0, 1), slice(0, 1)))
    votes.add(sub_volume([0.1, 0.8, 0.1]), (slice(1, 3), slice(0, 1), slice(0, 1)))
    assert votes.votes[:, :, 0, 0].T.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    np.testing.assert_allclose(votes.probability_sums[:, 1, 0, 0].numpy(), [0.6, 1.1, 0.3], rtol=1e-6)
