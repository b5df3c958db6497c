"""Tissue attenuation of the synthetic CTs per contrast phase (HU).

The generator draws every case's tissue values from arterial-phase ranges
(:func:`~.synthetic_anatomy.sample_tissues`, the paper's phase); another phase
maps each drawn value to the same relative place in that phase's range
(:func:`phase_value`), so one seed gives the same anatomy in every phase and
the arterial CTs stay exactly what they were. The ranges are typical adult
values of CT teaching references (e.g. Radiopaedia's renal mass protocol and
multiphase renal CT reviews) and our choice within them, not measured here:

===============  ==========  ==============  ==================
tissue           arterial    venous          non-contrast
                             (nephrographic)
===============  ==========  ==============  ==================
renal cortex     150-250     140-200         30-40
renal medulla    cortex-50..90  = cortex     = cortex
aorta            250-400     150-200         35-50
IVC              100-160     130-180         35-50
renal vein       150-200     150-190         35-50
liver            65-105      100-130         55-65
spleen           90-120      110-130         45-55
bowel wall       20-45       30-60           30-45
tumor, hyper     170-260     120-160         30-45
tumor, iso       120-180     100-140         25-40
tumor, hypo      60-110      50-90           20-35
===============  ==========  ==============  ==================

Fat, bone, muscle, air, cysts and necrosis do not change with contrast here.
"""
from typing import Dict, Tuple

PHASES = ("arterial", "venous", "non-contrast")
ARTERIAL_HU: Dict[str, Tuple[float, float]] = {
    "cortex": (150, 250), "aorta": (250, 400), "ivc": (100, 160), "renal_vein": (150, 200), "liver": (65, 105),
    "spleen": (90, 120), "bowel": (20, 45), "tumor_hyper": (170, 260), "tumor_iso": (120, 180),
    "tumor_hypo": (60, 110)}
PHASE_HU: Dict[str, Dict[str, Tuple[float, float]]] = {
    "venous": {"cortex": (140, 200), "aorta": (150, 200), "ivc": (130, 180), "renal_vein": (150, 190),
               "liver": (100, 130), "spleen": (110, 130), "bowel": (30, 60), "tumor_hyper": (120, 160),
               "tumor_iso": (100, 140), "tumor_hypo": (50, 90)},
    "non-contrast": {"cortex": (30, 40), "aorta": (35, 50), "ivc": (35, 50), "renal_vein": (35, 50),
                     "liver": (55, 65), "spleen": (45, 55), "bowel": (30, 45), "tumor_hyper": (30, 45),
                     "tumor_iso": (25, 40), "tumor_hypo": (20, 35)},
}


def check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise ValueError(f"unknown contrast phase {phase!r}; choose one of {', '.join(PHASES)}")
    return phase


def phase_value(value: float, tissue: str, phase: str) -> float:
    """An arterial-phase HU `value` of `tissue` moved to the same relative place in `phase`'s range."""
    if check_phase(phase) == "arterial":
        return value
    low, high = ARTERIAL_HU[tissue]
    new_low, new_high = PHASE_HU[phase][tissue]
    return new_low + (value - low) / (high - low) * (new_high - new_low)


def tissues_in_phase(tissue: Dict[str, float], phase: str) -> Dict[str, float]:
    """A case's arterial tissue values (:func:`~.synthetic_anatomy.sample_tissues`) in `phase`: the enhancing
    tissues moved, the medulla as enhanced as the cortex (no corticomedullary difference outside the arterial
    phase)."""
    if check_phase(phase) == "arterial":
        return dict(tissue)
    moved = {**tissue, **{name: phase_value(tissue[name], name, phase)
                          for name in ARTERIAL_HU if not name.startswith("tumor_")}}
    moved["medulla"] = moved["cortex"]
    return moved
