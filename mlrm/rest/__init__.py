"""REST transport of the ML service (Flask, served by gunicorn)."""

from mlrm.rest.app import create_app

__all__ = ["create_app"]
