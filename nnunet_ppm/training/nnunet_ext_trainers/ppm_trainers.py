"""nnU-Net imports this module by its bare name from the nnUNet_extTrainer folder and looks trainers up in it.

It only re-exports the trainers of nnunet_ppm.training, so they keep their real
module (pickling, isinstance checks) however nnU-Net imports this file.
"""
from nnunet_ppm.training.ppm_trainer import PPMTrainer  # noqa: F401
from nnunet_ppm.training.variants import (PPMTrainer_5epochs, PPMTrainer_10epochs, PPMTrainer_50epochs,  # noqa: F401
                                          PPMTrainer_100epochs, PPMTrainer_250epochs, PPMTrainer_cpuDemo,
                                          PPMTrainerBenchmark_5epochs, PPMTrainerBenchmark_5epochs_noDataLoading,
                                          PPMTrainerBenchmark_3epochs_4its,
                                          PPMTrainerBenchmark_3epochs_4its_noDataLoading,
                                          PPMTrainer_debug, PPMTrainer_gpuDemo, PPMTrainer_learningCurve,
                                          PPMTrainer_learningCurveDemoLR, nnUNetTrainer_cpuDemo,
                                          nnUNetTrainer_debug, nnUNetTrainer_gpuDemo, nnUNetTrainer_learningCurve,
                                          nnUNetTrainer_untrained, nnUNetTrainerBenchmark_3epochs_4its)
