"""Traffic routing between a stable and a canary model server: one module per provider
(router.py, replicas.py, gateway.py, istio.py) behind the Protocol in provider.py, which
also holds the registry by name.

PURE like render/: a split in, objects (and the router's config file) out. Nothing here
talks to the API. This package imports only shares.py itself: render/ uses its Match and
Split, and the providers are built from render/'s pieces.
"""

from __future__ import annotations

from .shares import COOKIE, HEADER, Match, Split

__all__ = ["COOKIE", "HEADER", "Match", "Split"]
