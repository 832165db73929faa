"""Traffic routing between a stable and a canary model server.

PURE like render/: a Route in, a config file out. Nothing here talks to the API.
"""

from __future__ import annotations

from .replicas import ReplicaSplit, split_replicas
from .router import Match, Route, render_nginx_conf

__all__ = ["Match", "ReplicaSplit", "Route", "render_nginx_conf", "split_replicas"]
