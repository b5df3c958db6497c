"""Converters that turn the paper's patient folders and KiTS19/21/23 into nnU-Net raw datasets, and the synthetic CT generator."""
