"""nnUNetPPMPlans: the plans (network, patch, batch, intensity handling) of the paper, derived from nnU-Net's own plans."""
