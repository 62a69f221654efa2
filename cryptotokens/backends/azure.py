"""Azure Key Vault crypto token: key pairs are Key Vault keys, signing happens in the vault.

* The vault URL comes from the vault name through ``settings.AZURE_KEYVAULT_URL_TEMPLATE``
  (``https://{vault}.vault.azure.net``; ``{name}`` is accepted too). The template and AZURE_AUTHORITY_HOST must
  be https URLs; a wrong one is a clear CryptoTokenError at token creation and use. A standard vault holds
  software-protected keys (kty RSA, EC),
  a premium vault HSM-protected ones (RSA-HSM, EC-HSM).
* A key pair alias is the Key Vault key name, so it must fit Key Vault's rule (letters, digits, '-').
  Key Vault's create makes a new *version* of an existing name, so the backend checks with get_key first.
  The row keeps the versioned key id (``https://<vault>/keys/<name>/<version>``) as ``private_data``.
* Key Vault signs a digest: the handle hashes here and sends RS*/PS*/ES* with the digest; ECDSA results
  come back as r || s and are converted to DER.
* RSA keys are created for sign/verify and encrypt/decrypt (SCEP requests are encrypted to the CA's key);
  their handles decrypt in the vault with RSA1_5 (PKCS#1 v1.5), RSA-OAEP (OAEP with SHA-1) or RSA-OAEP-256
  (OAEP with SHA-256). A ciphertext the vault refuses raises ValueError, as ``cryptography`` does; a
  key created without the decrypt operation is refused clearly.
* Removing a key pair deletes the key. Vaults have soft delete, so the name stays taken until the
  deleted key is purged (keys/purge, deliberately not needed here) or its retention ends.
* Authentication: a service principal (client ID in a tenant) with the application secret as the token's
  authentication code, or with a client certificate from a key binding (see
  :func:`register_key_binding_credentials`). Permissions needed: keys/get, keys/create, keys/sign,
  keys/delete, keys/decrypt to decrypt, and keys/list to list the vault's keys (the "Key Vault Crypto Officer"
  role covers them).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from django.conf import settings

from ..errors import (
    AuthenticationCodeError,
    CryptoTokenError,
    KeyPairExistsError,
    KeyPairNotFoundError,
    UnsupportedKeySpecError,
)
from .base import BackendParameter, CryptoTokenBackend, DeviceKey, GeneratedKeyPair, KeySpec, key_spec_of, registry
from .keys import DecryptRequest
from .remote_keys import (
    ClientPool,
    CryptoTokenUnavailableError,
    KeyServiceAccessDeniedError,
    RemoteECPrivateKey,
    RemoteRSAPrivateKey,
    SignRequest,
    check_curve_hash,
    ecdsa_raw_to_der,
)

if TYPE_CHECKING:
    from ..models import CryptoTokenKeyPair

logger = logging.getLogger("cryptotokens.azure")

VAULT_STANDARD, VAULT_PREMIUM = "standard", "premium"
VAULT_TYPES = ((VAULT_STANDARD, "Standard (software-protected keys)"), (VAULT_PREMIUM, "Premium (HSM-protected keys)"))
AUTH_APP_SECRET, AUTH_KEY_BINDING = "APP_SECRET", "KEY_BINDING"
AUTH_METHODS = ((AUTH_APP_SECRET, "Application secret"), (AUTH_KEY_BINDING, "Key binding (client certificate)"))

CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
RSA_SIZES = (2048, 3072, 4096)
SUPPORTED_SPECS_TEXT = "RSA 2048/3072/4096 and EC P-256/P-384/P-521"
SIGNATURE_ALGORITHMS = {
    ("PKCS1v15", "sha256"): "RS256", ("PKCS1v15", "sha384"): "RS384", ("PKCS1v15", "sha512"): "RS512",
    ("PSS", "sha256"): "PS256", ("PSS", "sha384"): "PS384", ("PSS", "sha512"): "PS512",
    ("ECDSA", "sha256"): "ES256", ("ECDSA", "sha384"): "ES384", ("ECDSA", "sha512"): "ES512",
}
# (scheme, OAEP hash, MGF1 hash) -> Key Vault's encryption algorithm; Key Vault's OAEP takes no label.
ENCRYPTION_ALGORITHMS = {
    ("PKCS1v15", None, None): "RSA1_5", ("OAEP", "sha1", "sha1"): "RSA-OAEP",
    ("OAEP", "sha256", "sha256"): "RSA-OAEP-256",
}
RSA_KEY_OPERATIONS = ["sign", "verify", "encrypt", "decrypt"]
# A key name nobody creates: getting it proves the credentials, the vault and keys/get (404 is success).
PROBE_KEY_NAME = "pki-crypto-token-connection-check"

KEY_NAME_RE = re.compile(r"[0-9A-Za-z-]{1,127}")
VAULT_NAME_RE = re.compile(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]")
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")

# Key bindings live in an app above this one, so it registers how to get a binding's credential here.
KeyBindingCredentials = Callable[[str], bytes]  # key binding name -> PEM: certificate and RSA private key
_key_binding_credentials: KeyBindingCredentials | None = None

_POOL_KEY_SALT = os.urandom(16)


@dataclass
class VaultClients:
    """One credential and the Key Vault clients built on it (a CryptographyClient per key id)."""

    credential: Any
    keys: Any
    crypto: dict[str, Any] = field(default_factory=dict)


_clients: ClientPool[VaultClients] = ClientPool()


def register_key_binding_credentials(resolver: KeyBindingCredentials | None) -> None:
    """Let the key bindings app say how a binding's certificate and key are obtained (None to unset)."""
    global _key_binding_credentials
    _key_binding_credentials = resolver


def clear_clients() -> None:
    """Drop every pooled Key Vault client (tests; after changing endpoints or credentials process-wide)."""
    _clients.clear()


@dataclass(frozen=True)
class VaultConnection:
    """What the clients are built from; ``secret`` is excluded from repr so it never reaches a log."""

    token_name: str
    vault_url: str
    vault_type: str
    tenant_id: str
    client_id: str
    auth_method: str
    key_binding: str
    secret: str = field(repr=False)
    token_version: int

    @property
    def pool_key(self) -> tuple:
        secret_tag = hmac.new(_POOL_KEY_SALT, self.secret.encode(), hashlib.sha256).hexdigest()
        return (self.vault_url, self.client_id, self.token_version, self.tenant_id, self.auth_method,
                self.key_binding, secret_tag)

    def client_kwargs(self) -> dict[str, Any]:
        """Transport settings shared by the credential and the Key Vault clients."""
        kwargs: dict[str, Any] = {
            # A couple of quick retries for connection hiccups; throttling (429) keeps the SDK's handling.
            "retry_connect": 2, "retry_backoff_factor": 0.5, "connection_timeout": 10, "read_timeout": 30,
        }
        ca_bundle = getattr(settings, "AZURE_CA_BUNDLE", "")
        if ca_bundle:
            kwargs["connection_verify"] = ca_bundle
        return kwargs


VAULT_PLACEHOLDERS = ("vault", "name")  # {vault}; {name} is the older spelling of the same


def _https_url(setting: str, url: str) -> str:
    """``url`` if it is an https URL with a host and nothing else (no credentials, query or fragment); otherwise a
    CryptoTokenError naming the setting. Bearer tokens and client assertions go there: never over plain http."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme != "https" or not host:
        raise CryptoTokenError(f"{setting} must be an https:// URL with a host name (it is '{url}'): Azure AD tokens "
                               "and client secrets are never sent over plain http.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise CryptoTokenError(f"{setting} must not contain credentials, a query or a fragment (it is '{url}').")
    return url


def vault_url_for(vault_name: str) -> str:
    """The vault URL of ``vault_name`` through AZURE_KEYVAULT_URL_TEMPLATE (``https://{vault}.vault.azure.net``),
    or a CryptoTokenError saying what is wrong with the template."""
    template = str(getattr(settings, "AZURE_KEYVAULT_URL_TEMPLATE", "") or "https://{vault}.vault.azure.net")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        fields = {"?"}
    if not fields or not fields <= set(VAULT_PLACEHOLDERS):
        raise CryptoTokenError(
            f"AZURE_KEYVAULT_URL_TEMPLATE must contain {{vault}} where the vault name goes, and no other "
            f"placeholder, e.g. https://{{vault}}.vault.azure.net (it is '{template}')."
        )
    return _https_url("AZURE_KEYVAULT_URL_TEMPLATE", template.format(vault=vault_name, name=vault_name).rstrip("/"))


def authority_host() -> str:
    """AZURE_AUTHORITY_HOST, checked (empty: the Azure SDK's default, login.microsoftonline.com)."""
    host = str(getattr(settings, "AZURE_AUTHORITY_HOST", "") or "")
    return _https_url("AZURE_AUTHORITY_HOST", host) if host else ""


# What CertificateCredential says about a PEM it cannot use (azure-identity's messages), to tell them apart from
# its other ValueErrors: only these mean the key binding's credential itself is unfit.
_CERTIFICATE_PROBLEMS = ("deserialize certificate", "must include its private key", "RSA private key",
                         "Malformed certificate")


def _make_credential(conn: VaultConnection):
    # azure-identity (MSAL) and the Key Vault clients are imported on first use: every process registers
    # this backend, few of them ever talk to Azure.
    from azure.identity import CertificateCredential, ClientSecretCredential

    options: dict[str, Any] = {
        # The authority is operator configuration; MSAL's instance discovery call to
        # login.microsoftonline.com would only validate it (and fails for private or sovereign hosts).
        "disable_instance_discovery": True,
        **conn.client_kwargs(),
    }
    authority = authority_host()
    if authority:
        options["authority"] = authority
    if conn.auth_method == AUTH_APP_SECRET:
        try:
            return ClientSecretCredential(conn.tenant_id, conn.client_id, conn.secret, **options)
        except ValueError as exc:  # the settings were checked: what remains is the SDK's own refusal
            raise CryptoTokenError(f"Azure AD login of crypto token '{conn.token_name}' cannot be set up: "
                                   f"{str(exc)[:200]}") from None
    if _key_binding_credentials is None:
        raise CryptoTokenError(
            f"Crypto token '{conn.token_name}' authenticates with key binding '{conn.key_binding}', but no key "
            "binding provider is installed."
        )
    try:
        pem = _key_binding_credentials(conn.key_binding)
    except CryptoTokenError:
        raise
    except Exception as exc:  # the provider's own failure (no such binding, binding inactive, ...)
        raise CryptoTokenError(
            f"Key binding '{conn.key_binding}' of crypto token '{conn.token_name}' cannot be used: "
            f"{exc.__class__.__name__}."
        ) from None
    try:
        return CertificateCredential(conn.tenant_id, conn.client_id, certificate_data=pem, **options)
    except ValueError as exc:
        if any(problem in str(exc) for problem in _CERTIFICATE_PROBLEMS):  # not PEM, no key, or not an RSA key
            raise CryptoTokenError(
                f"Key binding '{conn.key_binding}' cannot authenticate to Azure: {str(exc)[:200]} (an RSA key and "
                "its certificate are needed)."
            ) from None
        raise CryptoTokenError(f"Azure AD login of crypto token '{conn.token_name}' with key binding "
                               f"'{conn.key_binding}' cannot be set up: {str(exc)[:200]}") from None


def _make_clients(conn: VaultConnection) -> VaultClients:
    from azure.keyvault.keys import KeyClient

    credential = _make_credential(conn)
    keys = KeyClient(conn.vault_url, credential, verify_challenge_resource=_verify_challenge(), **conn.client_kwargs())
    return VaultClients(credential=credential, keys=keys)


def _verify_challenge() -> bool:
    # Off only for test servers that are not *.vault.azure.net; in production the SDK checks the challenge.
    return bool(getattr(settings, "AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE", True))


def _crypto_client(clients: VaultClients, conn: VaultConnection, key_id: str):
    client = clients.crypto.get(key_id)
    if client is None:
        from azure.keyvault.keys.crypto import CryptographyClient

        client = CryptographyClient(
            key_id, clients.credential, verify_challenge_resource=_verify_challenge(), **conn.client_kwargs()
        )
        clients.crypto[key_id] = client  # a race only builds a second, equivalent client
    return client


def _causes(exc: BaseException):
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _translate(exc: Exception, conn: VaultConnection, operation: str) -> CryptoTokenError:
    """A typed error that says what went wrong, without the secret."""
    token = conn.token_name
    if isinstance(exc, CryptoTokenError):
        return exc
    if any(isinstance(e, ServiceRequestError | ServiceResponseError) for e in _causes(exc)):
        # Also when the credential could not reach the authority (azure-identity wraps that error).
        return CryptoTokenUnavailableError(
            f"Azure Key Vault {conn.vault_url} or its Azure AD authority cannot be reached for crypto token "
            f"'{token}' ({operation}): check the vault name and the network."
        )
    if isinstance(exc, ClientAuthenticationError):
        code = re.search(r"AADSTS\d+", str(exc))
        detail = f" ({code.group(0)})" if code else ""
        what = "application secret" if conn.auth_method == AUTH_APP_SECRET else "key binding certificate"
        return AuthenticationCodeError(
            f"Azure AD rejected the credentials of crypto token '{token}'{detail}: check the tenant ID, the "
            f"client ID and the {what}."
        )
    if isinstance(exc, ResourceNotFoundError):
        return KeyPairNotFoundError(f"The Key Vault key of crypto token '{token}' does not exist in {conn.vault_url}.")
    if isinstance(exc, ResourceExistsError):
        return KeyPairExistsError(
            f"Azure Key Vault refused {operation} for crypto token '{token}': the key name is taken (a deleted key "
            "keeps its name until it is purged)."
        )
    if isinstance(exc, HttpResponseError) and exc.status_code == 403:
        return KeyServiceAccessDeniedError(
            f"Azure Key Vault denied {operation} to the service principal of crypto token '{token}': it needs the "
            "keys/get, keys/create, keys/sign and keys/delete permissions (e.g. the Key Vault Crypto Officer role)."
        )
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or exc.status_code
        message = (getattr(error, "message", None) or exc.reason or "")[:300]
        return CryptoTokenError(f"Azure Key Vault refused {operation} for crypto token '{token}': {code}: {message}")
    if isinstance(exc, ValueError) and "challenge" in str(exc).lower():
        return CryptoTokenError(
            f"Azure Key Vault at {conn.vault_url} answered with an authentication challenge for another resource: "
            "the vault URL is not a Key Vault (or, for a test server, disable the challenge resource check)."
        )
    return CryptoTokenError(f"Azure Key Vault {operation} failed for crypto token '{token}': {type(exc).__name__}.")


def _call(conn: VaultConnection, operation: str, action: Callable[[VaultClients], Any]) -> Any:
    """Run ``action`` with the pooled clients; failures become typed errors and drop the clients."""
    key = conn.pool_key
    try:
        clients = _clients.get(key, partial(_make_clients, conn))
    except ValueError as exc:  # the SDK refused its settings before any request (CryptoTokenErrors pass as they are)
        logger.warning("Azure Key Vault clients for crypto token %r cannot be built: %s", conn.token_name, exc)
        raise CryptoTokenError(f"Azure Key Vault clients of crypto token '{conn.token_name}' cannot be set up: "
                               f"{str(exc)[:200]}") from None
    try:
        return action(clients)
    except (AzureError, ValueError) as exc:
        error = _translate(exc, conn, operation)
        if isinstance(error, KeyPairNotFoundError | KeyPairExistsError):
            # An answer about a key, often the expected one (the existence checks): the clients are fine.
            logger.debug("Azure Key Vault %s for crypto token %r: %s", operation, conn.token_name, type(exc).__name__)
        else:
            _clients.discard(key, clients)  # fresh credential and connections next time
            logger.warning("Azure Key Vault %s failed for crypto token %r: %s", operation, conn.token_name,
                           type(exc).__name__)
        raise error from None


def vault_key_name(alias: str) -> str:
    """The Key Vault key name of a key pair alias, or a CryptoTokenError saying Key Vault's rule."""
    if not KEY_NAME_RE.fullmatch(alias):
        raise CryptoTokenError(
            f"Key pair alias '{alias}' cannot be a Key Vault key name: use 1 to 127 letters, digits or '-'."
        )
    return alias


def _public_key_of(jwk) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The ``cryptography`` public key of a Key Vault JSON web key."""
    kty = str(getattr(jwk.kty, "value", jwk.kty))
    if kty.startswith("RSA"):
        return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
    curve = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}[
        str(getattr(jwk.crv, "value", jwk.crv))
    ]
    return ec.EllipticCurvePublicNumbers(int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"),
                                         curve()).public_key()


def _sign(conn: VaultConnection, key_id: str, public_key, request: SignRequest) -> bytes:
    """The signer behind a Key Vault key handle."""
    if request.scheme == "ECDSA":
        check_curve_hash(public_key.curve, request.hash, "Azure Key Vault")
    algorithm = SIGNATURE_ALGORITHMS[(request.scheme, request.hash.name)]
    digest = request.digest()

    def sign(clients: VaultClients) -> bytes:
        return _crypto_client(clients, conn, key_id).sign(algorithm, digest).signature

    signature = _call(conn, "sign", sign)
    return ecdsa_raw_to_der(signature) if request.scheme == "ECDSA" else signature


class _Undecryptable(Exception):
    """The vault could not decrypt the ciphertext (carried past :func:`_call`, which translates ValueError)."""


def _decrypt(conn: VaultConnection, key_id: str, label: str, request: DecryptRequest) -> bytes:
    """The decryptor behind a Key Vault RSA key handle."""
    algorithm = ENCRYPTION_ALGORITHMS.get(
        (request.scheme, request.hash and request.hash.name, request.mgf_hash and request.mgf_hash.name))
    if algorithm is None or request.label:
        asked = request.describe() + (" with a label" if request.label else "")
        raise UnsupportedKeySpecError(
            f"Azure Key Vault decrypts with PKCS#1 v1.5 (RSA1_5) or RSA-OAEP with SHA-1 or SHA-256 for both hashes "
            f"(RSA-OAEP, RSA-OAEP-256) and no label, not {asked}."
        )

    def decrypt(clients: VaultClients) -> bytes:
        try:
            return _crypto_client(clients, conn, key_id).decrypt(algorithm, request.ciphertext).plaintext
        except HttpResponseError as exc:
            message = str(getattr(getattr(exc, "error", None), "message", "") or exc.message or "")
            if "not permitted" in message:  # the key's key_ops lack decrypt (keys made sign-only)
                raise CryptoTokenError(
                    f"The key {label} is not allowed to decrypt: it was created without the decrypt key operation "
                    "(sign-only); generate a new RSA key for decryption."
                ) from None
            if exc.status_code == 400 and getattr(getattr(exc, "error", None), "code", None) == "BadParameter":
                # The request was checked here (algorithm, length): what the vault refuses is the ciphertext.
                raise _Undecryptable from None
            raise

    try:
        return _call(conn, "decrypt", decrypt)
    except _Undecryptable:
        raise ValueError("Decryption failed") from None


@registry.register
class AzureCryptoTokenBackend(CryptoTokenBackend):
    """Key pairs in Azure Key Vault; see the module documentation."""

    type_name = "AzureCryptoToken"
    label = "Azure Key Vault"
    parameters = (
        BackendParameter("vault_type", "Key Vault type", choices=VAULT_TYPES, default=VAULT_STANDARD,
                         help_text="Premium keeps keys in an HSM; Standard protects them in software."),
        BackendParameter("vault_name", "Key Vault name", help_text="The name chosen when the vault was created."),
        BackendParameter("client_id", "Key Vault client ID",
                         help_text="Application (client) ID of the service principal allowed to use the vault."),
        BackendParameter("tenant_id", "Tenant ID", help_text="Directory (tenant) ID of the service principal."),
        BackendParameter("authentication", "Authentication", choices=AUTH_METHODS, default=AUTH_APP_SECRET,
                         help_text="Application secret: the secret is the authentication code. Key binding: a "
                         "certificate registered for the service principal, with its key."),
        BackendParameter("key_binding", "Key binding", required=False,
                         help_text="Required with key binding authentication: the remote authenticator to use."),
    )

    def _properties(self) -> dict[str, str]:
        props = self.token.properties or {}
        vault_type = str(props.get("vault_type") or VAULT_STANDARD).strip().lower()
        if vault_type not in dict(VAULT_TYPES):
            raise CryptoTokenError(f"Unknown Key Vault type '{vault_type}': choose standard or premium.")
        vault_name = str(props.get("vault_name") or "").strip()
        if not VAULT_NAME_RE.fullmatch(vault_name):
            raise CryptoTokenError(
                f"'{vault_name}' is not a Key Vault name: 3 to 24 letters, digits and single hyphens, starting "
                "with a letter and ending with a letter or digit."
            )
        client_id = str(props.get("client_id") or "").strip()
        if not GUID_RE.fullmatch(client_id):
            raise CryptoTokenError("The Key Vault client ID must be the application's GUID.")
        tenant_id = str(props.get("tenant_id") or "").strip()
        if not TENANT_RE.fullmatch(tenant_id):
            raise CryptoTokenError("A tenant ID (a GUID or a domain such as contoso.onmicrosoft.com) is required.")
        method = str(props.get("authentication") or AUTH_APP_SECRET).strip()
        if method not in dict(AUTH_METHODS):
            raise CryptoTokenError(f"Unknown Key Vault authentication '{method}': choose APP_SECRET or KEY_BINDING.")
        key_binding = str(props.get("key_binding") or "").strip() if method == AUTH_KEY_BINDING else ""
        if method == AUTH_KEY_BINDING and not key_binding:
            raise CryptoTokenError("Key binding authentication needs the name of a key binding.")
        return {"vault_type": vault_type, "vault_name": vault_name, "client_id": client_id, "tenant_id": tenant_id,
                "authentication": method, "key_binding": key_binding}

    def _connection(self, auth_code: str) -> VaultConnection:
        props = self._properties()
        return VaultConnection(
            token_name=self.token.name, vault_url=vault_url_for(props["vault_name"]),
            vault_type=props["vault_type"], tenant_id=props["tenant_id"], client_id=props["client_id"],
            auth_method=props["authentication"], key_binding=props["key_binding"],
            secret=auth_code if props["authentication"] == AUTH_APP_SECRET else "",
            token_version=int(self.token.version or 1),
        )

    def initialize(self, auth_code: str) -> None:
        """Store the normalized settings and prove the vault accepts the credentials before saving."""
        self.token.properties = {**(self.token.properties or {}), **self._properties()}
        self.check_auth_code(auth_code)

    def check_auth_code(self, auth_code: str) -> None:
        """Get a key nobody has: it takes a token from Azure AD and the vault's keys/get; 404 is success."""
        conn = self._connection(auth_code)
        try:
            _call(conn, "authentication check", lambda c: c.keys.get_key(PROBE_KEY_NAME))
        except KeyPairNotFoundError:
            pass

    def list_device_keys(self, auth_code: str) -> list[DeviceKey]:
        """The vault's keys (keys/list, then keys/get for each enabled one): its public key and versioned id."""
        conn = self._connection(auth_code)
        names = _call(conn, "list keys", lambda c: sorted(
            (p.name, bool(p.enabled)) for p in c.keys.list_properties_of_keys()))
        return [self._device_key(conn, name) if enabled else DeviceKey(name, "", "", problem="it is disabled")
                for name, enabled in names if name != PROBE_KEY_NAME]

    def _device_key(self, conn: VaultConnection, name: str) -> DeviceKey:
        try:
            key = _call(conn, "get key", lambda c: c.keys.get_key(name))
        except KeyPairNotFoundError:
            return DeviceKey(name, "", "", problem="it was deleted while being listed")
        try:
            public_key = _public_key_of(key.key)
            spec = key_spec_of(public_key)
        except (KeyError, TypeError, ValueError, UnsupportedKeySpecError):
            return DeviceKey(name, str(getattr(key.key.kty, "value", key.key.kty)), "",
                             problem="it is not an RSA or EC key on P-256, P-384 or P-521")
        ops = {str(getattr(op, "value", op)) for op in (key.key_operations or [])}
        problem = "" if "sign" in ops else "it was created without the sign operation"
        return DeviceKey(name, spec.algorithm, spec.spec_value, public_key=public_key, reference=key.id.encode(),
                         problem=problem)

    def adoptable_key(self, alias: str, auth_code: str) -> GeneratedKeyPair:
        """The vault key named ``alias`` (its latest version), by its key id and public key."""
        name = vault_key_name(alias)
        key = self._device_key(self._connection(auth_code), name)
        if key.public_key is None and "deleted" in key.problem:
            raise KeyPairNotFoundError(f"Azure Key Vault holds no key '{alias}' for crypto token '{self.token.name}'.")
        if not key.usable or key.public_key is None:
            raise CryptoTokenError(f"Key Vault key '{alias}' of crypto token '{self.token.name}' cannot be used: "
                                   f"{key.problem}.")
        return GeneratedKeyPair(public_key=key.public_key, private_data=key.reference)

    def supported(self, spec: KeySpec) -> None:
        rsa_ok = spec.algorithm == "RSA" and spec.size in RSA_SIZES
        if not (rsa_ok or (spec.algorithm == "EC" and spec.curve in CURVES)):
            raise UnsupportedKeySpecError(
                f"Azure Key Vault crypto tokens hold {SUPPORTED_SPECS_TEXT} keys, not {spec}."
            )

    def generate_key_pair(self, alias: str, spec: KeySpec, auth_code: str) -> GeneratedKeyPair:
        self.supported(spec)
        name = vault_key_name(alias)
        conn = self._connection(auth_code)
        try:
            _call(conn, "get key", lambda c: c.keys.get_key(name))
        except KeyPairNotFoundError:
            pass
        else:
            raise KeyPairExistsError(
                f"Key pair alias '{alias}' already exists as a key in Azure Key Vault {conn.vault_url} for crypto "
                f"token '{self.token.name}'."
            )
        hsm = conn.vault_type == VAULT_PREMIUM
        tags = {"pki-crypto-token": self.token.name[:256], "pki-key-alias": alias}
        if spec.algorithm == "RSA":
            def create(c: VaultClients):
                return c.keys.create_rsa_key(name, size=spec.size, hardware_protected=hsm,
                                             key_operations=RSA_KEY_OPERATIONS, tags=tags)
        else:
            def create(c: VaultClients):
                return c.keys.create_ec_key(name, curve=CURVES[spec.curve or ""], hardware_protected=hsm,
                                            key_operations=["sign", "verify"], tags=tags)
        key = _call(conn, "create key", create)
        return GeneratedKeyPair(public_key=_public_key_of(key.key), private_data=key.id.encode(),
                                extra={"key_vault_key_id": key.id})

    def load_private_key(
        self, entry: CryptoTokenKeyPair, auth_code: str
    ) -> RemoteRSAPrivateKey | RemoteECPrivateKey:
        if not entry.private_data:
            raise KeyPairNotFoundError(f"Key pair '{entry.alias}' has no Key Vault key reference.")
        key_id = bytes(entry.private_data).decode()
        public_key = load_der_public_key(bytes(entry.public_key_der))
        label = f"'{entry.alias}' of crypto token '{self.token.name}' (Azure Key Vault)"
        conn = self._connection(auth_code)
        signer = partial(_sign, conn, key_id, public_key)
        if isinstance(public_key, rsa.RSAPublicKey):
            return RemoteRSAPrivateKey(public_key, signer, label, decryptor=partial(_decrypt, conn, key_id, label))
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return RemoteECPrivateKey(public_key, signer, label)
        raise UnsupportedKeySpecError(f"Key pair {label} has an unsupported key type.")

    def remove_key_pair(self, entry: CryptoTokenKeyPair, auth_code: str) -> None:
        """Delete the key (soft delete keeps it recoverable for the vault's retention period)."""
        if not entry.private_data:
            return
        name = bytes(entry.private_data).decode().rstrip("/").split("/keys/", 1)[-1].split("/")[0]
        try:
            _call(self._connection(auth_code), "delete key", lambda c: c.keys.begin_delete_key(name).result())
        except KeyPairNotFoundError:
            pass  # already gone
