"""modeldeploy: a Kubernetes operator that serves ML models and rolls them out safely."""

__version__ = "0.1.0"
