"""Every name the operator gives to a child object, in one place."""

STABLE = "stable"
CANARY = "canary"
FALLBACK = "fallback"  # spec.traffic.fallback's variant


def service(md_name: str) -> str:
    """The Service clients call: named after the ModelDeployment itself."""
    return md_name


def variant(md_name: str, variant_name: str = STABLE) -> str:
    """Deployment (and its HPA and PodDisruptionBudget) of one variant."""
    return f"{md_name}-{variant_name}"


def host(md_name: str, namespace: str, cluster_domain: str) -> str:
    return f"{service(md_name)}.{namespace}.svc.{cluster_domain}"
