"""The 3D_FCN_PPM network and its building blocks."""
from nnunet_ppm.network.fcn_ppm import FCNPPM

__all__ = ["FCNPPM"]
