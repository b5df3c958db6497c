"""`nnunet_ppm trainer-dir`: print the folder that nnUNet_extTrainer must list."""
import argparse

from nnunet_ppm.nnunet_env import EXT_TRAINER_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Use: export nnUNet_extTrainer=$(nnunet_ppm trainer-dir)  (only needed where .pth files are skipped)"


def run(args: argparse.Namespace) -> int:
    print(EXT_TRAINER_DIR)
    return 0
