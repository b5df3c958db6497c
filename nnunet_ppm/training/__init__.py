"""Training: PPMTrainer (the paper's recipe) and its variants."""
