"""nnU-Net's predictor with majority-vote sub-volume aggregation and the paper's post-processing per case.

:class:`PPMPredictor` is an ``nnUNetPredictor``: model loading, preprocessing
workers, sliding-window tiling, mirroring, fold ensembling and resampling are
nnU-Net's own. It changes two things:

* ``aggregation="vote"`` replaces the Gaussian-weighted average of
  overlapping tiles by majority voting (``vote_aggregation``); the tiles are
  nnU-Net's sliding-window tiles (patch size from the plans - 64 slices in
  the PPM plans - and overlap from ``tile_step_size``). With several folds
  the votes are counted over folds x tiles (every fold's tiles vote, ties go
  to the larger probability summed over the same tiles), instead of
  nnU-Net's mean of per-fold outputs. With mirroring, each tile's vote is
  the argmax of its mirror-averaged prediction.
* with ``postprocessing`` set, each case's probabilities (after nnU-Net's
  resampling to the raw image) go through CRF and largest component before
  the labels are written, in background processes, atomically. This is the
  same function ``nnunet_ppm postprocess`` applies to the .npz of
  ``nnUNetv2_predict --save_probabilities``, so both routes give the same labels.
  With ``save_probabilities`` the .npz/.pkl written are nnU-Net's (before CRF).

Post-processing applies to file-based prediction (``predict_from_files``);
in-memory callers (``predict_single_npy_array``) get nnU-Net's results and can
call ``postprocess_probabilities`` themselves.

With post-processing, or with ``num_processes_segmentation_export=0``, the
predictor times every case (``case_seconds``; ``nnunet_ppm predict`` writes
them to OUT/case_seconds.json, :func:`case_seconds_file`): "preprocessing"
(how long the network's loop waited for the case's preprocessed data: all
of the preprocessing in this process, the part not hidden behind the
network with workers), "sliding_window" (the network, until its output is
on the CPU), and with post-processing "resampling" (nnU-Net's export to the
raw image's geometry), "crf" and "largest_component" (measured where they
ran, in an export worker or here).

``predict_from_files`` with ``num_processes_preprocessing=0`` preprocesses in
this process (nnU-Net's ``PreprocessAdapter``), and with
``num_processes_segmentation_export=0`` exports in this process: with both 0
no worker process is started (each would import torch and nnU-Net again, ~10 s
on a small CPU), while ``num_parts`` / ``part_id`` and ``overwrite`` keep
working, unlike nnU-Net's ``predict_from_files_sequential``.
"""
import concurrent.futures
import multiprocessing
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import save_pickle
from nnunetv2.configuration import default_num_processes
from nnunetv2.inference.data_iterators import PreprocessAdapter
from nnunetv2.inference.export_prediction import (convert_predicted_logits_to_segmentation_with_correct_shape,
                                                  export_prediction_from_logits)
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.helpers import empty_cache
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from tqdm import tqdm

from nnunet_ppm.atomic_io import atomic_output
from nnunet_ppm.postprocessing.pipeline import PostprocessingSettings, postprocess_and_write_case
from nnunet_ppm.postprocessing.vote_aggregation import SubVolumeVotes, log_vote_fractions

AGGREGATIONS = ("gaussian", "vote")


def export_postprocessed_prediction(logits: np.ndarray, properties: dict, configuration_manager: ConfigurationManager,
                                    plans_manager: PlansManager, dataset_json: dict, output_file_truncated: str,
                                    image_files: List[str], settings: PostprocessingSettings,
                                    save_probabilities: bool) -> Dict[str, float]:
    """Resample one case's logits like nnU-Net's export, then post-process and write it (runs in a worker); returns
    the seconds of resampling and of each post-processing step.

    Args:
        logits: network output in the preprocessed geometry, shape (classes, *preprocessed shape).
        properties: the case's properties from nnU-Net's preprocessing.
        configuration_manager: the configuration (resampling functions, spacing).
        plans_manager: the plans (transposes, image reader/writer).
        dataset_json: the dataset description (labels, file ending).
        output_file_truncated: output path without ending (nnU-Net's ``ofile``).
        image_files: the case's raw image files, for the CRF.
        settings: post-processing settings.
        save_probabilities: also write nnU-Net's .npz probabilities and .pkl properties.
    """
    start = time.perf_counter()
    label_manager = plans_manager.get_label_manager(dataset_json)
    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, plans_manager, configuration_manager, label_manager, properties, return_probabilities=True)
    del logits
    seconds = {"resampling": round(time.perf_counter() - start, 3)}
    if save_probabilities:
        with atomic_output(output_file_truncated + ".npz") as temporary:
            np.savez_compressed(str(temporary), probabilities=probabilities)
        with atomic_output(output_file_truncated + ".pkl") as temporary:
            save_pickle(properties, str(temporary))
    return {**seconds, **postprocess_and_write_case(os.path.basename(output_file_truncated), probabilities, properties,
                                                     image_files, output_file_truncated + dataset_json["file_ending"],
                                                     plans_manager.image_reader_writer_class(), settings)}


def case_seconds_file(folder: str, part_id: int = 0, num_parts: int = 1) -> Path:
    """Where ``nnunet_ppm predict`` writes the seconds of the cases it timed: FOLDER/case_seconds.json, or with
    several parts FOLDER/case_seconds_part<part_id>.json (parts may run at the same time)."""
    return Path(folder) / ("case_seconds.json" if num_parts == 1 else f"case_seconds_part{part_id}.json")


def _log_fractions_of_tally(tally: torch.Tensor) -> torch.Tensor:
    """log vote fractions (classes, *image) of a tally stacked as (votes, probability sums) along the class axis."""
    votes, probability_sums = tally.chunk(2)
    return log_vote_fractions(votes, probability_sums)


class PPMPredictor(nnUNetPredictor):
    """nnUNetPredictor with ``aggregation`` ("gaussian" or "vote") and optional per-case ``postprocessing``.

    Args:
        *args, **kwargs: nnUNetPredictor's arguments.
        aggregation: "gaussian" (nnU-Net's weighted average) or "vote" (paper's majority vote).
        postprocessing: settings for CRF and largest component; None writes nnU-Net's labels unchanged.
    """

    def __init__(self, *args, aggregation: str = "gaussian",
                 postprocessing: Optional[PostprocessingSettings] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.aggregation = aggregation
        self.postprocessing = postprocessing
        self._image_files_by_output = {}
        self.case_seconds: Dict[str, Dict[str, float]] = {}  # {case: {step: seconds}}, see the module docstring

    @torch.inference_mode()
    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers, do_on_device: bool = True):
        """nnU-Net's Gaussian-weighted tile average; under "vote" the tiles' tally (see ``_vote_tally``)."""
        if self.aggregation == "gaussian":
            return super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)
        if self.label_manager.has_regions:
            raise ValueError("vote aggregation needs a softmax (label) model; this model predicts regions")
        results_device = self.device if do_on_device else torch.device("cpu")
        empty_cache(self.device)
        data = data.to(results_device)
        votes = SubVolumeVotes(self.label_manager.num_segmentation_heads, data.shape[1:], results_device)
        for slicer in tqdm(slicers, disable=not self.allow_tqdm):
            sub_volume = data[slicer][None].to(self.device)
            votes.add(self._internal_maybe_mirror_and_predict(sub_volume)[0].to(results_device), slicer[1:])
        return torch.cat((votes.votes.float(), votes.probability_sums))

    def _vote_tally(self, input_image: torch.Tensor) -> torch.Tensor:
        """Votes and summed probabilities of the loaded network's tiles, stacked: (2 * classes, *image), float32.

        nnU-Net's ``predict_sliding_window_return_logits`` (padding, tiling, device fallback, unpadding) around
        the vote branch of ``_internal_predict_sliding_window_return_logits``, which returns this tally.
        """
        return super().predict_sliding_window_return_logits(input_image)

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        """nnU-Net's sliding-window prediction of the loaded network; under "vote" the log vote fractions."""
        if self.aggregation == "gaussian":
            return super().predict_sliding_window_return_logits(input_image)
        return _log_fractions_of_tally(self._vote_tally(input_image))

    @torch.inference_mode()
    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        """nnU-Net's fold ensemble (mean of the folds' outputs); under "vote" the votes of all folds' tiles, counted."""
        if self.aggregation == "gaussian":
            return super().predict_logits_from_preprocessed_data(data)
        threads = torch.get_num_threads()
        torch.set_num_threads(min(default_num_processes, threads))  # as nnU-Net's fold loop does
        try:
            tally = None
            for parameters in self.list_of_parameters:
                getattr(self.network, "_orig_mod", self.network).load_state_dict(parameters)  # torch.compile'd or not
                fold_tally = self._vote_tally(data).to("cpu")
                tally = fold_tally if tally is None else tally.add_(fold_tally)
        finally:
            torch.set_num_threads(threads)
        return _log_fractions_of_tally(tally)

    def _manage_input_and_output_lists(self, *args, **kwargs):
        """nnU-Net's case lists; remembers each output's raw image files for the CRF."""
        images, outputs, previous_stage = super()._manage_input_and_output_lists(*args, **kwargs)
        if outputs is not None:
            self._image_files_by_output.update(zip(outputs, images))
        return images, outputs, previous_stage

    def _internal_get_data_iterator_from_lists_of_filenames(self, input_list_of_lists, seg_from_prev_stage_files,
                                                            output_filenames_truncated, num_processes: int):
        """nnU-Net's preprocessing workers; with ``num_processes=0`` the cases are preprocessed in this process."""
        if num_processes > 0:
            return super()._internal_get_data_iterator_from_lists_of_filenames(
                input_list_of_lists, seg_from_prev_stage_files, output_filenames_truncated, num_processes)
        preprocessor = self.configuration_manager.preprocessor_class(verbose=self.verbose_preprocessing)
        return PreprocessAdapter(input_list_of_lists, seg_from_prev_stage_files, preprocessor,
                                 output_filenames_truncated, self.plans_manager, self.dataset_json,
                                 self.configuration_manager, num_threads_in_multithreaded=1)

    def predict_from_files_sequential(self, list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
                                      save_probabilities: bool = False, overwrite: bool = True,
                                      folder_with_segs_from_prev_stage: str = None):
        """nnU-Net's sequential prediction; with post-processing, ``predict_from_files`` without worker processes."""
        if self.postprocessing is None:
            return super().predict_from_files_sequential(list_of_lists_or_source_folder,
                                                         output_folder_or_list_of_truncated_output_files,
                                                         save_probabilities, overwrite, folder_with_segs_from_prev_stage)
        return self.predict_from_files(list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
                                       save_probabilities, overwrite, num_processes_preprocessing=0,
                                       num_processes_segmentation_export=0,
                                       folder_with_segs_from_prev_stage=folder_with_segs_from_prev_stage)

    def predict_from_data_iterator(self, data_iterator, save_probabilities: bool = False,
                                   num_processes_segmentation_export: int = default_num_processes):
        """nnU-Net's loop, except with ``postprocessing`` (network per case, export + post-processing in workers) or
        with ``num_processes_segmentation_export=0`` (export in this process).
        """
        if self.postprocessing is None and num_processes_segmentation_export > 0:
            return super().predict_from_data_iterator(data_iterator, save_probabilities,
                                                      num_processes_segmentation_export)
        workers = None
        if num_processes_segmentation_export > 0:
            workers = concurrent.futures.ProcessPoolExecutor(num_processes_segmentation_export,
                                                             mp_context=multiprocessing.get_context("spawn"))
        pending = {}  # {future: the seconds of its case}
        try:
            waiting = time.perf_counter()
            for preprocessed in data_iterator:
                ofile = preprocessed["ofile"]
                if ofile is None:
                    raise ValueError("in-process export and post-processing write files: give output file names")
                print(f"\nPredicting {os.path.basename(ofile)}:")
                start = time.perf_counter()
                logits = self.predict_logits_from_preprocessed_data(preprocessed["data"]).cpu().detach().numpy()
                seconds = self.case_seconds[os.path.basename(ofile)] = {
                    "preprocessing": round(start - waiting, 3), "sliding_window": round(time.perf_counter() - start, 3)}
                task = self._export_task(logits, preprocessed["data_properties"], ofile, save_probabilities)
                if workers is None:
                    seconds.update(task[0](*task[1:]) or {})
                else:
                    while sum(not f.done() for f in pending) >= num_processes_segmentation_export + 1:
                        concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    pending[workers.submit(*task)] = seconds
                waiting = time.perf_counter()
            for future, seconds in tqdm(pending.items(), desc="post-processing and export",
                                        disable=not self.allow_tqdm):
                seconds.update(future.result() or {})
        finally:
            if workers is not None:
                workers.shutdown(cancel_futures=True)
        empty_cache(self.device)

    def _export_task(self, logits: np.ndarray, properties: dict, ofile: str, save_probabilities: bool) -> tuple:
        """(function, *arguments) writing one case: nnU-Net's export, or export + post-processing."""
        if self.postprocessing is None:
            return (export_prediction_from_logits, logits, properties, self.configuration_manager, self.plans_manager,
                    self.dataset_json, ofile, save_probabilities)
        if ofile not in self._image_files_by_output:
            raise ValueError("post-processing needs each case's raw image files: predict with "
                             "predict_from_files, or call postprocess_probabilities on returned probabilities")
        return (export_postprocessed_prediction, logits, properties, self.configuration_manager, self.plans_manager,
                self.dataset_json, ofile, self._image_files_by_output[ofile], self.postprocessing, save_probabilities)
