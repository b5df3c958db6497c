"""Class weights of the paper's weighted cross-entropy (Eq. 1), looked up by label name.

The paper weighs background 0.2, kidney 1.0 and tumor 2.0. Every label the
network outputs is matched by its name in dataset.json, case-insensitively,
against ``PAPER_CLASS_WEIGHTS``: "background", "kidney", "tumor" or "tumour",
and "cyst" (the fourth label of `convert --keep-cyst`; the paper has no cysts,
so they get the kidney's weight 1.0, the paper's reference class). Any other
name is an error that says how to rename it: a label trained with a guessed
weight would silently change the recipe. Subclass PPMTrainer and change
``class_weights_by_name`` for other classes or weights.
"""
from typing import Dict, List, Sequence, Union

PAPER_CLASS_WEIGHTS = {"background": 0.2, "kidney": 1.0, "tumor": 2.0, "tumour": 2.0, "cyst": 1.0}


def class_weights(labels: Dict[str, Union[int, Sequence[int]]], output_labels: Sequence[int],
                  weights_by_name: Dict[str, float] = PAPER_CLASS_WEIGHTS, source: str = "dataset.json") -> List[float]:
    """One weight per network output, in the order of `output_labels` (label values).

    Args:
        labels: dataset.json's "labels" (name -> value).
        output_labels: the label values the network outputs, in channel order.
        weights_by_name: weight per lower-case label name.
        source: the dataset.json the labels come from, named in errors.

    Raises:
        ValueError: for region-based labels (a list of values), which a softmax cross-entropy cannot
            train, and for an output label whose name is not in `weights_by_name` (case-insensitive).
    """
    name_of_value = {}
    for name, value in labels.items():
        if not isinstance(value, int):
            raise ValueError(f"{source}: label {name!r} is a region {value}: the paper's weighted cross-entropy needs "
                             f"one integer value per label (region-based training is not supported by PPMTrainer)")
        name_of_value[value] = name
    missing = [int(v) for v in output_labels if v not in name_of_value]
    if missing:
        raise ValueError(f"{source}: network outputs for label values {missing} have no name in labels {labels}")
    unknown = {name_of_value[v]: v for v in output_labels if name_of_value[v].lower() not in weights_by_name}
    if unknown:
        found = ", ".join(f'"{name}": {value}' for name, value in unknown.items())
        accepted = ", ".join(f"{name!r} ({weight})" for name, weight in weights_by_name.items())
        raise ValueError(
            f"{source}: no class weight for label {found}. PPMTrainer's weighted cross-entropy finds each label's "
            f"weight by its name (case-insensitive); accepted names (weight): {accepted}. Rename the label in the "
            f'"labels" of dataset.json (e.g. "lesion": 2 -> "tumor": 2), in nnUNet_raw and in nnUNet_preprocessed; '
            f"for other classes subclass PPMTrainer and set class_weights_by_name")
    return [weights_by_name[name_of_value[v].lower()] for v in output_labels]
