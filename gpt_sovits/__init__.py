"""The shared model package: text frontend, S1, S2, features, checkpoints, training and inference."""
