"""nnunet-ppm: the 3D_FCN_PPM network of Yang et al. (ICPR 2018) as an nnU-Net v2 plugin.

Kept free of heavy imports: Python imports this package at every start-up through
the `nnunet_ppm-ext-trainer.pth` file (see `nnunet_ppm.nnunet_env`).
"""
__version__ = "0.1.0"
