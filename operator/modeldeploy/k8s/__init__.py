"""The ONLY layer that talks to the Kubernetes API (besides Kopf's own watching)."""

from .client import LIST_PAGE, ApiError, ChildConflict, Kube

__all__ = ["LIST_PAGE", "ApiError", "ChildConflict", "Kube"]
