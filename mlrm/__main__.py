from mlrm.cli import run

run()
