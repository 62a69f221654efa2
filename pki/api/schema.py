"""What the OpenAPI document says beyond what drf-spectacular reads off the views.

- The authentication schemes of the project's own DRF authentication classes (bearer tokens, client
  certificates from the TLS proxy), so the document names every way a caller can authenticate.
- The error replies every operation can give, in EJBCA's ``{"error_code", "error_message"}`` shape:
  authentication (401), authorization (403), throttling (429) and an unreachable database (503) can
  answer any call; a bad request (400) and an unsupported body type (415) any call that takes input;
  a missing object (404) any call with path parameters. Documenting them once here keeps every view's
  schema true without repeating the same list in every ``extend_schema``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

API_PREFIXES = ("/ejbca/ejbca-rest-api/", "/api/v1/")
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error_code": {"type": "integer"}, "error_message": {"type": "string"}},
    "required": ["error_code", "error_message"],
}
ALWAYS = {
    "401": "Not authenticated, or the credentials were refused.",
    "403": "The caller's roles do not allow this, or a cross-site request was refused.",
    "429": "Too many failed authentication attempts from this caller; retry after Retry-After seconds.",
    "503": "The database or a crypto token is unavailable; retry after Retry-After seconds.",
}
WITH_INPUT = {
    "400": "The request is malformed or breaks a rule; error_message says which.",
}
WITH_BODY = {
    "415": "The request body is not of a supported media type (application/json).",
}
WITH_PATH = {
    "404": "The object named in the path does not exist (or the caller may not see it).",
}
BODY_METHODS = {"post", "put", "patch"}
# EJBCA's crypto token resource answers 422 for an unknown token, a wrong activation code or a key it cannot make.
UNPROCESSABLE_PATHS = ("/ejbca/ejbca-rest-api/v1/cryptotoken/{",)
UNPROCESSABLE = {"422": "Unknown crypto token, wrong activation code, or a key pair that cannot be made (EJBCA's 422)."}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """OAuth 2.0 bearer access tokens (JWT) of a trusted OAuth provider."""

    target_class = "pki.auth.bearer.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class ClientCertificateScheme(OpenApiAuthenticationExtension):
    """A TLS client certificate, verified by the proxy in front of the application and forwarded by it."""

    target_class = "pki.auth.clientcert.ClientCertificateAuthentication"
    name = "clientCertificate"

    def get_security_definition(self, auto_schema) -> dict[str, Any]:
        return {
            "type": "apiKey", "in": "header", "name": "X-SSL-Client-Cert",
            "description": "Set by the TLS proxy from the verified client certificate (PKI_BEHIND_TLS_PROXY); "
                           "a client presents the certificate in the TLS handshake, never this header.",
        }


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def document_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the error replies each API operation can give."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith(API_PREFIXES):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            wanted = dict(ALWAYS)
            parameters = operation.get("parameters", [])
            if parameters or "requestBody" in operation:
                wanted.update(WITH_INPUT)
            if method in BODY_METHODS:
                wanted.update(WITH_BODY)
            if "{" in path:
                wanted.update(WITH_PATH)
            if path.startswith(UNPROCESSABLE_PATHS):
                wanted.update(UNPROCESSABLE)
            responses = operation["responses"]
            for code, description in wanted.items():
                responses.setdefault(code, _error_response(description))
    return result
