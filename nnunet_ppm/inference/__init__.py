"""Prediction: nnU-Net's predictor with vote aggregation and the paper's post-processing."""
