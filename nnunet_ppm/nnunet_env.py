"""Make nnU-Net find our trainers: the `nnUNet_extTrainer` folder.

nnU-Net looks trainers up by class name inside its own package, then in every
folder listed in the environment variable `nnUNet_extTrainer`. The installed
`nnunet_ppm-ext-trainer.pth` calls :func:`register_ext_trainer_dir` at Python
start-up, so every `nnUNetv2_*` command (and its worker processes) sees our
folder without the user exporting anything. Where .pth files are not processed
(`python -S`, a package used from PYTHONPATH), run
``export nnUNet_extTrainer=$(nnunet_ppm trainer-dir)``.
"""
import os

ENV_VAR = "nnUNet_extTrainer"
EXT_TRAINER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training", "nnunet_ext_trainers")


def register_ext_trainer_dir() -> None:
    """Append our trainer folder to `nnUNet_extTrainer` unless it is already listed."""
    listed = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if EXT_TRAINER_DIR not in listed:
        os.environ[ENV_VAR] = os.pathsep.join(listed + [EXT_TRAINER_DIR])
