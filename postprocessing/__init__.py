"""Post-processing of the paper (section II.B): 3D dense CRF, 18-connected largest component, sub-volume voting."""
