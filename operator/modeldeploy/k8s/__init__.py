"""The ONLY layer that talks to the Kubernetes API (besides Kopf's own watching)."""

from .client import ApiError, ChildConflict, Kube

__all__ = ["ApiError", "ChildConflict", "Kube"]
