"""Data for nnunet-ppm: the paper's ROI layout and KiTS19/21/23 as nnU-Net raw datasets, and synthetic CTs.

Python API (all file outputs appear atomically; sources are only read)::

    from nnunet_ppm.dataset_conversion.synthesize import synthesize
    from nnunet_ppm.dataset_conversion.convert import convert_dataset

    src = synthesize(tmp / "src", num_cases=2, seed=0, preset="tiny", layout="roi")
    folder = convert_dataset(src, 501, raw_dir=tmp / "nnUNet_raw")          # Dataset501_KidneyTumor
    rois = convert_dataset(src, 502, roi=True, roi_size="100mm", raw_dir=...)  # + roi_manifest.json, splits_final.json

Modules: ``synthesize`` (presets, layouts, painting onto real labels; CLI ``nnunet_ppm synth``),
``synthetic_anatomy`` / ``synthetic_ct`` / ``random_fields`` (the generator), ``convert``
(CLI ``nnunet_ppm convert``), ``patient_splits`` (held-out patients, cross-validation folds grouped by
patient), ``layouts`` (where each source keeps its files), ``roi`` (kidney boxes
and cropping, shared with whole-CT prediction), ``validation``, ``orientation``, ``labels``,
``image_files``, ``output_folder``, ``case_pool``.
"""
