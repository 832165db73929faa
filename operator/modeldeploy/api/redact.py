"""Keep credentials out of status, events and logs.

Messages the operator shows come partly from elsewhere: a pod's termination message (the
storage initializer prints the URI it failed to fetch), a kubelet's waiting message, the API
server's refusal to create a pod. Any of them can quote a URL that carries a secret, in its
user info (``s3://KEY:SECRET@bucket``) or in a signed query string (S3 and GCS presigned
URLs, Azure SAS tokens). ``redact`` masks both wherever a URL appears in free text, and
signed parameters quoted without their URL.

The storage initializer image carries a copy of this logic (it is a separate Docker build
context); keep the two in step.
"""

from __future__ import annotations

import re

MASK = "***"
# Query parameters that carry a credential, compared case-insensitively: exact names, and
# parts of a name (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, X-Goog-Signature,
# X-Goog-Credential, Signature, access_token, client_secret, password ...).
SECRET_PARAMS = ("sig", "key", "apikey", "api_key", "auth", "awsaccesskeyid", "googleaccessid")
SECRET_PARAM_PARTS = ("signature", "credential", "token", "secret", "password", "passwd")

_URL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)"
    # user info ends at the last "@" of the authority; a secret key may hold "/" (AWS's do),
    # so after "name:" (not a port) it runs to the "@" even across "/".
    r"(?P<userinfo>(?:[^/\s@?#'\"<>:]*:(?!\d+(?:[/\s?#]|$))[^\s@?#'\"<>]*|[^/\s@?#'\"<>]*)@)?"
    r"(?P<rest>[^\s?#'\"<>]*)"
    r"(?P<query>\?[^\s#'\"<>)\]]*)?"
)
_PARAM = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<value>[^&\s'\"<>)\]]+)")


def is_secret_param(name: str) -> bool:
    """A query parameter whose value is (part of) a credential."""
    lower = name.lower()
    return lower in SECRET_PARAMS or any(part in lower for part in SECRET_PARAM_PARTS)


def _mask_url(match: re.Match[str]) -> str:
    userinfo = f"{MASK}@" if match.group("userinfo") else ""
    query = f"?{MASK}" if match.group("query") else ""
    return f"{match.group('scheme')}{userinfo}{match.group('rest')}{query}"


def _mask_param(match: re.Match[str]) -> str:
    name = match.group("name")
    return f"{name}={MASK}" if is_secret_param(name) else match.group(0)


def redact(text: str) -> str:
    """``text`` with the user info and the query string of every URL masked, and every
    credential parameter (``X-Amz-Signature=...``) quoted on its own masked."""
    if not text:
        return text
    return _PARAM.sub(_mask_param, _URL.sub(_mask_url, text))
