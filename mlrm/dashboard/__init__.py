"""The dashboard in the browser: one page for a person watching a gateway.

`mlrm up` runs it as a supervised child (`python -m mlrm.dashboard`) when the
manifest has a `dashboard:` section. It reads the gateway's state file, samples
every service's /metrics (already summed over gunicorn workers) and the
training service's jobs and sample counts on one clock, keeps the last minutes
in memory so every browser sees the same history, and serves the static page
from the package (plain HTML, CSS and JS; uPlot vendored with its licence).
Actions (retrain, roll back) are forwarded to the training service with the
operator's own token. See docs/dashboard.md.
"""
