"""What each traffic provider (spec.traffic.provider) can do: the one table that validation
(api/validate.py), the providers' rendering (routing/) and the docs table read.

Pure data in api/ so that validation, which may import nothing above api/, and the providers,
which render what the table promises, agree by construction; `capabilities_table()` is the
table in docs/api.md, and a unit test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """routes_with / weights / needs: how the provider splits, how exact its weights are, and
    what the cluster must have; the booleans: what spec.traffic may ask of it."""

    routes_with: str
    weights: str
    header_match: bool
    cookie_match: bool
    mirror: bool
    needs_gateway: bool
    needs: str

    def match_text(self) -> str:
        if self.header_match and self.cookie_match:
            return "headers and cookies"
        if self.header_match:
            return "headers only"
        return "cookies only" if self.cookie_match else "no"


ROUTER = "router"
REPLICAS = "replicas"
GATEWAY_API = "gateway-api"
ISTIO = "istio"

CAPABILITIES: dict[str, Capabilities] = {
    ROUTER: Capabilities(
        routes_with="an operator-managed nginx (`NAME-router`, 2 pods by default, with a PodDisruptionBudget) "
        "in front of the variant Services, split by `X-Request-Id`",
        weights="exact", header_match=True, cookie_match=True, mirror=True, needs_gateway=False,
        needs="nothing (image `modeldeploy/router`)",
    ),
    REPLICAS: Capabilities(
        routes_with="the main Service selects the model-server pods of both variants; the canary's share is "
        "its share of the pods",
        weights="the closest split the pods allow: 25% of 4 pods is 1 canary + 3 stable; 20% of 2 pods is 50%, "
        "reported as such",
        header_match=False, cookie_match=False, mirror=False, needs_gateway=False, needs="nothing",
    ),
    GATEWAY_API: Capabilities(
        routes_with="an HTTPRoute `NAME` on `traffic.gateway`, backends `NAME-stable` / `NAME-canary`",
        weights="exact, by the gateway", header_match=True, cookie_match=False, mirror=True, needs_gateway=True,
        needs="Gateway API CRDs and a gateway",
    ),
    ISTIO: Capabilities(
        routes_with="a VirtualService `NAME` for `traffic.hosts` (default `NAME.NAMESPACE.svc.cluster.local`) "
        "on `traffic.gateways` (default: the mesh)",
        weights="exact, by the mesh", header_match=True, cookie_match=True, mirror=True, needs_gateway=False,
        needs="Istio",
    ),
}
DEFAULT_PROVIDER = ROUTER


def capabilities_table() -> str:
    """The Markdown table of docs/api.md ("Traffic providers"), one row per provider."""
    rows = [
        "| `provider` | how requests are split | weights | match | mirror | needs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, cap in CAPABILITIES.items():
        shown = f"`{name}` (default)" if name == DEFAULT_PROVIDER else f"`{name}`"
        rows.append(
            f"| {shown} | {cap.routes_with} | {cap.weights} | {cap.match_text()} | {'yes' if cap.mirror else 'no'} | {cap.needs} |"
        )
    return "\n".join(rows) + "\n"


def unsupported(capabilities: Capabilities, *, headers: bool = False, cookies: bool = False, mirror: bool = False) -> list[str]:
    """What of (header match, cookie match, mirror) a split asks that the provider cannot do."""
    wanted = (("header match", headers, capabilities.header_match), ("cookie match", cookies, capabilities.cookie_match),
              ("mirror", mirror, capabilities.mirror))
    return [what for what, asked, can in wanted if asked and not can]
