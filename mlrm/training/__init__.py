"""Training: fit a config set here (trainer), read CSV files, talk to a training service (remote, feedback)."""
