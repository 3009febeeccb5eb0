"""Virtual assets for demos, examples and tests: rooms and machines that
produce realistic readings (no data is downloaded)."""
