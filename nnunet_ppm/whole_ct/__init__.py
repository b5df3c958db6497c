"""Whole-CT segmentation with a per-kidney ROI model: localise, crop, predict the ROIs, paste back.

Modules: ``rois`` (ROI boxes and crops shared with ``convert --roi``; pasting back with the overlap
rule; volumes), ``predict_ct`` (the steps), ``predict_ct_cli`` (CLI ``nnunet_ppm predict-ct``),
``recall`` (how much of each reference kidney its ROI holds; tests and benchmarks/whole_ct.py).
"""
