"""Check that a case's probabilities belong to its CT before the CRF combines them."""
from typing import Any, Sequence

import numpy as np


def _mismatches(expected: Any, found: Any, path: str):
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in found:
                yield f"{path}{key} missing from the saved properties"
            else:
                yield from _mismatches(value, found[key], f"{path}{key}.")
        return
    try:
        a, b = np.asarray(expected, dtype=float), np.asarray(found, dtype=float)
        same = a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-4)
    except (TypeError, ValueError):
        same = expected == found
    if not same:
        yield f"{path.rstrip('.')}: image has {expected}, probabilities were saved for {found}"


def check_case_geometry(case_id: str, probabilities_shape: Sequence[int], saved_properties: dict,
                        image_shape: Sequence[int], image_properties: dict) -> None:
    """Raise a ValueError naming ``case_id`` unless probabilities and image share shape and geometry.

    Args:
        case_id: case identifier, used in the error message.
        probabilities_shape: (classes, *spatial) of the probabilities.
        saved_properties: the properties nnU-Net stored with the probabilities (its ``.pkl``).
        image_shape: (channels, *spatial) of the image as the dataset's reader returns it.
        image_properties: the properties that reader returned (spacing, origin, direction, ...).
    """
    problems = []
    if tuple(probabilities_shape[1:]) != tuple(image_shape[1:]):
        problems.append(f"probabilities have spatial shape {tuple(probabilities_shape[1:])}, "
                        f"image has {tuple(image_shape[1:])}")
    problems += list(_mismatches(image_properties, saved_properties, ""))
    if problems:
        raise ValueError(f"case {case_id}: probabilities do not match the image: " + "; ".join(problems))
