"""Class weights of the paper's weighted cross-entropy (Eq. 1), looked up by label name.

The paper weighs background 0.2, kidney 1.0 and tumor 2.0. Labels are matched
by their name in dataset.json (case-insensitive; "tumour" too). Rule for other
labels (e.g. "cyst" kept with `convert --keep-cyst`): they get the kidney's
weight 1.0, the paper's reference class. Subclass PPMTrainer and change
`class_weights_by_name` for another choice.
"""
from typing import Dict, List, Sequence

PAPER_CLASS_WEIGHTS = {"background": 0.2, "kidney": 1.0, "tumor": 2.0, "tumour": 2.0}
OTHER_LABEL_WEIGHT = 1.0


def class_weights(labels: Dict[str, int], output_labels: Sequence[int],
                  weights_by_name: Dict[str, float] = PAPER_CLASS_WEIGHTS,
                  other_weight: float = OTHER_LABEL_WEIGHT) -> List[float]:
    """One weight per network output, in the order of `output_labels` (label values).

    `labels` is dataset.json's "labels" (name -> value). Raises ValueError for region-based
    labels (a list of values), which a softmax cross-entropy cannot train.
    """
    name_of_value = {}
    for name, value in labels.items():
        if not isinstance(value, int):
            raise ValueError(f"label {name!r} is a region {value}: the paper's weighted cross-entropy needs one "
                             f"integer value per label (region-based training is not supported by PPMTrainer)")
        name_of_value[value] = name.lower()
    missing = [v for v in output_labels if v not in name_of_value]
    if missing:
        raise ValueError(f"network outputs for label values {missing} have no name in dataset.json labels {labels}")
    return [weights_by_name.get(name_of_value[v], other_weight) for v in output_labels]
