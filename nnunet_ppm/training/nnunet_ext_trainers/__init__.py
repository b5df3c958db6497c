"""Trainer modules that nnU-Net imports by bare name from nnUNet_extTrainer; each re-exports classes of nnunet_ppm.training."""
