"""The ONLY layer that talks to the Kubernetes API (besides Kopf's own watching)."""

from .client import ApiError, Kube

__all__ = ["ApiError", "Kube"]
