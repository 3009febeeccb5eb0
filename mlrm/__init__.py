"""mlrm: Machine Learning as a Reusable Microservice."""

__version__ = "0.1.0"
