"""Checks the API server cannot make: everything that needs the runtime registry or
knowledge of how the spec becomes pods.

``validate()`` never raises on user input: it returns the parsed spec and its resolved
runtime, or a list of problems, each naming the field and what is accepted. The operator
turns problems into the InvalidSpec condition and a Warning event and leaves whatever is
serving untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from .modelregistry import is_registry_uri, parse as parse_registry_uri
from .providers import CAPABILITIES, unsupported
from .traffic import COOKIE, HEADER, Match, match_problems
from .quantity import parse_quantity
from .redact import is_secret_param
from .runtimes import DEFAULT_PORT, DEFAULT_PROTOCOL, RuntimeRegistry
from .spec import (
    QUERY_VARIABLES,
    SUPPORTED_PROVIDERS,
    Analysis,
    ModelDeploymentSpec,
    Resources,
    unknown_query_variables,
)

SUPPORTED_SCHEMES = ("s3", "gs", "http", "https", "pvc", "hf")
# The suffixes of child names ("<name>-<suffix>"; the Service is "<name>"), as
# render/names.py builds them (render.names.STABLE, CANARY, render.router.ROUTER); the api
# layer sits below render, so they are spelled here and a unit test checks both agree.
CHILD_SUFFIXES = ("stable", "canary", "router", "fallback")
# Every child name must stay a DNS-1035 label of at most 63 characters. "-fallback" exists only
# with spec.traffic.fallback, which checks the longer name itself (FALLBACK_NAME_LENGTH), so
# names that fitted before the fallback existed still fit.
DNS_LABEL_MAX = 63
MAX_NAME_LENGTH = DNS_LABEL_MAX - 1 - max(len(s) for s in CHILD_SUFFIXES if s != "fallback")
FALLBACK_NAME_LENGTH = DNS_LABEL_MAX - 1 - len("fallback")
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
USE_SECRET = "put the credentials in a Secret and name it in spec.model.secretName"
REGISTRY_ONLY_IN_MODEL = (
    "a models:/ URI is resolved for spec.model only: give a storage URI here (status.registry.versions lists "
    "each version's artifactUri), or roll the version out through spec.model"
)
READINESS_PATHS = {"v2": "/v2/health/ready", "v1": "/v1/models/{name}", "http": "/"}
# Extended resources that Kubernetes does not overcommit: request must equal limit.
_NATIVE_PREFIXES = ("cpu", "memory", "ephemeral-storage", "hugepages-", "kubernetes.io/")


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class ResolvedRuntime:
    """The model server the pods will run: registry entry merged with the user's overrides."""

    name: str | None
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[Mapping[str, Any], ...]
    port: int
    protocol: str
    readiness_path: str
    resources: Mapping[str, Mapping[str, Any]]

    @property
    def label(self) -> str:
        return self.name or self.image


@dataclass(frozen=True)
class Validated:
    spec: ModelDeploymentSpec
    runtime: ResolvedRuntime


def validate(
    name: str, spec: Mapping[str, Any], registry: RuntimeRegistry
) -> tuple[Validated | None, list[Problem]]:
    """Parse and check a ModelDeployment spec; return (result, []) or (None, problems)."""
    problems = check_name(name)
    try:
        parsed = ModelDeploymentSpec.model_validate(dict(spec))
    except ValidationError as err:
        return None, problems + [_from_pydantic(e) for e in err.errors()]

    problems += _check_uri(parsed.model.uri)
    problems += _check_registry(parsed)
    problems += _check_resources(parsed.resources)
    problems += _check_traffic(parsed)
    problems += _check_prometheus(parsed.rollout.analysis if parsed.rollout else None)
    problems += _check_quality_gates(parsed)
    if parsed.autoscaling and parsed.autoscaling.min_replicas > parsed.autoscaling.max_replicas:
        problems.append(Problem("spec.autoscaling.minReplicas", "must not exceed maxReplicas"))
    runtime, runtime_problems = _resolve_runtime(name, parsed, registry)
    problems += runtime_problems
    problems += _check_canary(name, parsed, registry, problems)
    problems += _check_fallback(name, parsed, registry)
    if problems or runtime is None:
        return None, problems
    return Validated(parsed, runtime), []


def check_name(name: str) -> list[Problem]:
    """The name must let every child be named: a DNS-1035 label (Services require it)
    short enough for the longest "-<suffix>", and never a name whose children would be
    another ModelDeployment's (``iris-stable``'s Service is ``iris``'s stable Service).
    https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names
    """
    problems = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(Problem(
            "metadata.name",
            f"must be at most {MAX_NAME_LENGTH} characters (children add up to "
            f"{DNS_LABEL_MAX - MAX_NAME_LENGTH} to it, and {DNS_LABEL_MAX} is the limit), got {len(name)}",
        ))
    if not _DNS_1035.fullmatch(name):
        problems.append(Problem(
            "metadata.name",
            f"{name!r} is not a DNS-1035 label: lowercase letters, digits and '-', starting with a letter "
            "and ending with a letter or digit",
        ))
    for suffix in CHILD_SUFFIXES:
        owner = name.removesuffix(f"-{suffix}")
        if owner != name and owner:
            reserved = ", ".join(f"-{s}" for s in CHILD_SUFFIXES)
            problems.append(Problem(
                "metadata.name",
                f"ends in '-{suffix}', which names the children of ModelDeployment {owner!r}: this one's "
                f"Service {name!r} would be the {suffix} Service of {owner!r}, so the two would fight over "
                f"the same objects; choose a name that does not end in {reserved}",
            ))
    return problems


def _check_traffic(spec: ModelDeploymentSpec) -> list[Problem]:
    """What the chosen provider can express: the replicas provider neither matches nor
    mirrors, gateway-api needs its Gateway and matches headers only, and a provider's own
    fields are never silently ignored under another provider."""
    traffic = spec.traffic
    if traffic is None:
        return []
    problems = []
    provider = traffic.provider
    if provider not in SUPPORTED_PROVIDERS:
        accepted = ", ".join(SUPPORTED_PROVIDERS)
        problems.append(Problem("spec.traffic.provider", f"{provider!r} is not supported; accepted: {accepted}"))
    matches = traffic.match or []
    problems += _check_capabilities(traffic, provider)
    if provider != "gateway-api" and traffic.gateway is not None:
        problems.append(Problem("spec.traffic.gateway", f"is used by provider gateway-api only, not {provider!r}: remove it"))
    for field in ("hosts", "gateways"):
        if provider != "istio" and getattr(traffic, field) is not None:
            problems.append(Problem(f"spec.traffic.{field}", f"is used by provider istio only, not {provider!r}: remove it"))
    for i, m in enumerate(matches):
        kind, rule = (HEADER, m.header) if m.header else (COOKIE, m.cookie)
        problems += [Problem(f"spec.traffic.match[{i}]", p) for p in match_problems([Match(rule.name, rule.value, kind)])]  # type: ignore[union-attr]
    if traffic.mirror and matches:
        problems.append(Problem("spec.traffic.mirror", "mirror sends clients only stable's answers: remove spec.traffic.match"))
    if spec.rollout is None and (matches or traffic.mirror):
        problems.append(Problem("spec.traffic", "match and mirror act during a rollout: set spec.rollout"))
    return problems


# What spec.traffic asks of a provider, by the names api.providers.unsupported() gives.
_ASKS = {
    "header match": ("spec.traffic.match", "match requests by header"),
    "cookie match": ("spec.traffic.match", "match requests by cookie"),
    "mirror": ("spec.traffic.mirror", "copy requests to the canary (mirror)"),
}


def _check_capabilities(traffic: Any, provider: str) -> list[Problem]:
    """What the provider cannot do, read from the one capability table (api/providers.py)
    that the providers render by: each refusal names the providers that can."""
    capabilities = CAPABILITIES.get(provider)
    if capabilities is None:
        return []
    matches = traffic.match or []
    asked = {"headers": any(m.header for m in matches), "cookies": any(m.cookie for m in matches), "mirror": bool(traffic.mirror)}
    problems = []
    for what in unsupported(capabilities, **asked):
        field, verb = _ASKS[what]
        able = [name for name, other in CAPABILITIES.items() if what not in unsupported(other, **asked)]
        problems.append(Problem(field, (
            f"the {provider} provider cannot {verb}: {capabilities.routes_with}; "
            f"remove it, or use provider {' or '.join(able)}"
        )))
    if capabilities.needs_gateway and traffic.gateway is None:
        problems.append(Problem(
            "spec.traffic.gateway",
            f"the {provider} provider needs the Gateway its HTTPRoute attaches to: set spec.traffic.gateway.name",
        ))
    return problems


def _from_pydantic(error: Mapping[str, Any]) -> Problem:
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    return Problem(path, error["msg"])


def _check_uri(uri: str) -> list[Problem]:
    if is_registry_uri(uri):
        try:
            parse_registry_uri(uri)
        except ValueError as err:
            return [Problem("spec.model.uri", str(err))]
        return []
    credential = _check_credentials(uri)
    if credential:
        return [Problem("spec.model.uri", credential)]
    scheme, _, rest = uri.partition("://")
    if scheme.lower() not in SUPPORTED_SCHEMES:
        accepted = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
        return [Problem("spec.model.uri", f"unsupported scheme {scheme}://; accepted: {accepted}")]
    if scheme.lower() == "pvc":
        claim, _, path = rest.partition("/")
        if not claim or not path.strip("/"):
            return [Problem("spec.model.uri", "pvc:// URIs take the form pvc://CLAIM/PATH")]
    if scheme.lower() in ("s3", "gs") and not rest.split("/", 1)[0]:
        return [Problem("spec.model.uri", f"{scheme}:// URIs take the form {scheme}://BUCKET/PATH")]
    return []


def _check_registry(spec: ModelDeploymentSpec) -> list[Problem]:
    """spec.model.registry and follow go with a models:/ URI; follow with an alias."""
    model = spec.model
    if not is_registry_uri(model.uri):
        if model.registry is not None:
            return [Problem("spec.model.registry", "is used with a models:/ URI only: remove it or name a registered model")]
        if model.follow:
            return [Problem("spec.model.follow", "follows a registry alias: it needs a models:/NAME@ALIAS or models:/NAME/latest URI")]
        return []
    if model.follow:
        try:
            pinned_version = parse_registry_uri(model.uri).version
        except ValueError:
            return []  # _check_uri says why
        if pinned_version is not None:
            return [Problem("spec.model.follow", (
                f"{model.uri} names a version, which never moves: follow an alias (models:/NAME@ALIAS, models:/NAME/latest) "
                "or remove follow"
            ))]
    return []


def _has_userinfo(rest: str) -> bool:
    """``user[:password]@`` before the host; a secret key may hold "/" (AWS's do), so
    ``name:...@`` counts too unless what follows the colon is a port."""
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        return True
    path = rest.split("?", 1)[0]
    _, colon, after = authority.partition(":")
    return bool(colon) and not after.isdigit() and "@" in path


def _check_credentials(uri: str) -> str | None:
    """A URI is shown in status, events and the pods' annotations and logs, so it must not
    carry a credential: no user info, no signed or token query parameter (the names in
    ``api.redact``: X-Amz-Signature, X-Amz-Credential, X-Goog-Signature, Azure's sig, token,
    ...). The message names the parameter, never its value."""
    _, sep, rest = uri.partition("://")
    if sep and _has_userinfo(rest):
        return f"must not carry user info (user:password@); {USE_SECRET}"
    query = uri.split("#", 1)[0].partition("?")[2]
    secret = [key for key, _ in parse_qsl(query, keep_blank_values=True) if is_secret_param(key)]
    if secret:
        return f"must not carry a signed URL or token (query parameter {secret[0]}); {USE_SECRET}"
    return None


def _check_resources(resources: Resources | None) -> list[Problem]:
    if resources is None:
        return []
    problems: list[Problem] = []
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("requests", "limits"):
        parsed[kind] = {}
        for resource, value in (getattr(resources, kind) or {}).items():
            field = f"spec.resources.{kind}[{resource}]"
            try:
                amount = parse_quantity(value)
            except ValueError as err:
                problems.append(Problem(field, str(err)))
                continue
            if amount < 0:
                problems.append(Problem(field, "must not be negative"))
            elif not resource.startswith(_NATIVE_PREFIXES) and amount != amount.to_integral_value():
                problems.append(Problem(field, f"extended resource {resource} must be a whole number"))
            parsed[kind][resource] = amount
    for resource, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        field = f"spec.resources.requests[{resource}]"
        if limit is not None and request > limit:
            problems.append(Problem(field, f"request {request} exceeds limit {limit}"))
        elif not resource.startswith(_NATIVE_PREFIXES) and limit != request:
            problems.append(
                Problem(field, f"extended resource {resource} needs an equal limit (it cannot be overcommitted)")
            )
    return problems


def _check_quality_gates(spec: ModelDeploymentSpec) -> list[Problem]:
    """Shadow agreement is measured on mirrored requests only."""
    analysis = spec.rollout.analysis if spec.rollout else None
    if analysis is None or analysis.min_agreement is None or (spec.traffic and spec.traffic.mirror):
        return []
    return [Problem("spec.rollout.analysis.minAgreement",
                    "needs spec.traffic.mirror: true (agreement compares stable's and the canary's answers to the same mirrored requests)")]


def _check_prometheus(analysis: Analysis | None) -> list[Problem]:
    """Custom checks need a server, a bound, and only the template variables we fill in."""
    if analysis is None or not analysis.prometheus_checks:
        return []
    field = "spec.rollout.analysis.prometheusChecks"
    problems = []
    if not analysis.prometheus_url:
        problems.append(Problem(field, "needs spec.rollout.analysis.prometheusUrl"))
    names: set[str] = set()
    for i, check in enumerate(analysis.prometheus_checks):
        if check.min is None and check.max is None:
            problems.append(Problem(f"{field}[{i}]", f"check {check.name!r} needs min, max or both"))
        elif check.min is not None and check.max is not None and check.min > check.max:
            problems.append(Problem(f"{field}[{i}]", f"check {check.name!r}: min {check.min:g} exceeds max {check.max:g}"))
        unknown = unknown_query_variables(check.query)
        if unknown:
            known = ", ".join("{{ %s }}" % v for v in QUERY_VARIABLES)
            problems.append(Problem(f"{field}[{i}].query", f"unknown template variable {unknown[0]!r}; known: {known}"))
        if check.name in names:
            problems.append(Problem(f"{field}[{i}].name", f"duplicate check name {check.name!r}"))
        names.add(check.name)
    return problems


def _resolve_runtime(
    name: str, spec: ModelDeploymentSpec, registry: RuntimeRegistry
) -> tuple[ResolvedRuntime | None, list[Problem]]:
    model_format = spec.model.format
    wanted = spec.runtime
    if wanted is not None and wanted.image:
        base = None
    elif wanted is not None and wanted.name:
        base = registry.get(wanted.name)
        if base is None:
            known = ", ".join(registry.names) or "none"
            return None, [Problem("spec.runtime.name", f"unknown runtime {wanted.name!r}; known runtimes: {known}")]
        if model_format and model_format not in base.formats:
            served = ", ".join(base.formats) or "none"
            return None, [
                Problem("spec.model.format", f"runtime {base.name!r} does not serve {model_format!r}; it serves: {served}")
            ]
    elif model_format is None:
        return None, [Problem("spec.model.format", "is required when spec.runtime is not set")]
    else:
        base = registry.for_format(model_format)
        if base is None:
            served = ", ".join(registry.formats) or "none"
            return None, [
                Problem("spec.model.format", f"no runtime serves format {model_format!r}; formats with a runtime: {served}")
            ]

    protocol = (wanted and wanted.protocol) or (base.protocol if base else DEFAULT_PROTOCOL)
    readiness = (wanted and wanted.readiness_path) or (base and base.readiness_path)
    env = tuple({"name": k, "value": v} for k, v in base.env) if base else ()
    if wanted and wanted.env:
        env += tuple(e.model_dump(by_alias=True, exclude_none=True) for e in wanted.env)
    return (
        ResolvedRuntime(
            name=base.name if base else None,
            image=base.image if base else str(wanted.image),  # type: ignore[union-attr]
            command=tuple((wanted and wanted.command) or (base.command if base else ())),
            args=tuple((wanted and wanted.args) or (base.args if base else ())),
            env=env,
            port=(wanted and wanted.port) or (base.port if base else DEFAULT_PORT),
            protocol=protocol,
            readiness_path=readiness or READINESS_PATHS[protocol].format(name=name),
            resources=base.resources if base else {},
        ),
        [],
    )


def _check_canary(name: str, spec: ModelDeploymentSpec, registry: RuntimeRegistry, known: list[Problem]) -> list[Problem]:
    """spec.canary needs a rollout, and its overlay on spec.model/spec.runtime must be
    servable: the same checks as the stable variant, named after the canary's fields
    (a problem ``known`` from the stable variant is not repeated)."""
    canary = spec.canary
    if canary is None:
        return []
    problems = []
    if spec.rollout is None:
        problems.append(Problem("spec.canary", "needs spec.rollout: how the canary reaches traffic"))
    overlay = spec.model_copy(update={"model": canary.model or spec.model, "runtime": canary.runtime or spec.runtime})
    problems += _resolve_runtime(name, overlay, registry)[1]
    overridden = {part for part in ("model", "runtime") if getattr(canary, part) is not None}
    # The canary's own URI is checked on its own: the same message as stable's is not a repeat.
    uri = [Problem("spec.canary.model.uri", p.message) for p in _check_uri(canary.model.uri)] if canary.model else []
    if canary.model is not None and is_registry_uri(canary.model.uri):
        uri.append(Problem("spec.canary.model.uri", REGISTRY_ONLY_IN_MODEL))
    return uri + [_in_canary(p, overridden) for p in problems if p not in known]


def _check_fallback(name: str, spec: ModelDeploymentSpec, registry: RuntimeRegistry) -> list[Problem]:
    """spec.traffic.fallback: the router answers from it, so it needs provider router; its
    model must be servable like stable's (checked under its own field names) and the longer
    child name must fit."""
    fallback = spec.traffic.fallback if spec.traffic else None
    if fallback is None:
        return []
    field = "spec.traffic.fallback"
    problems = []
    # The CRD's CEL rules say the same; a spec that reached the operator some other way is checked here.
    if bool(fallback.previous) == (fallback.model is not None):
        problems.append(Problem(field, "set exactly one of previous: true or model"))
    if fallback.runtime is not None and fallback.model is None:
        problems.append(Problem(field, "runtime goes with model (previous runs its own recorded runtime)"))
    if spec.traffic.provider != "router":  # type: ignore[union-attr]
        problems.append(Problem(field, (
            f"the router answers from the fallback, so it needs provider router, not {spec.traffic.provider!r}"  # type: ignore[union-attr]
        )))
    if len(name) > FALLBACK_NAME_LENGTH:
        problems.append(Problem(field, (
            f"needs a name of at most {FALLBACK_NAME_LENGTH} characters (its Deployment is {name}-fallback), got {len(name)}"
        )))
    if fallback.model is not None:
        problems += [Problem(f"{field}.model.uri", p.message) for p in _check_uri(fallback.model.uri)]
        if is_registry_uri(fallback.model.uri):
            problems.append(Problem(f"{field}.model.uri", REGISTRY_ONLY_IN_MODEL))
        own = spec.model_copy(update={"model": fallback.model, "runtime": fallback.runtime or spec.runtime})
        for p in _resolve_runtime(name, own, registry)[1]:
            problems.append(Problem(field + "." + p.field.removeprefix("spec."), p.message))
    return problems


def _in_canary(problem: Problem, overridden: set[str]) -> Problem:
    """Name the canary's field: spec.model.uri -> spec.canary.model.uri when the canary sets
    the model; a problem with the part it keeps from stable (valid on its own) comes from
    the part it sets, e.g. a canary runtime that does not serve stable's model format."""
    part = (problem.field.split(".") + [""])[1]
    if part in overridden:
        return Problem("spec.canary." + problem.field.removeprefix("spec."), problem.message)
    if part in ("model", "runtime") and len(overridden) == 1:
        return Problem(f"spec.canary.{next(iter(overridden))}", problem.message)
    return problem
