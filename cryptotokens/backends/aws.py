"""AWS KMS crypto token: key pairs are asymmetric KMS keys (KeyUsage SIGN_VERIFY) known by KMS aliases.

The backend uses exactly the KMS rights EJBCA documents for such a token, and no others:
``ListAliases``, ``GetPublicKey``, ``CreateAlias``, ``CreateKey``, ``ScheduleKeyDeletion`` and ``Sign``
(:data:`KMS_RIGHTS`; :func:`_call` refuses anything else, so the IAM policy in the documentation stays true).

* A key pair alias ``signKey`` is the KMS alias ``alias/signKey``. The alias must not exist yet, checked
  with ``ListAliases`` (``DescribeKey`` is not among the rights).
* The key pair row keeps the key ARN as ``private_data``; the public key comes from ``GetPublicKey`` once.
* Removing a key pair schedules the KMS key for deletion with the shortest window (7 days). The alias
  cannot be deleted (``DeleteAlias`` is not among the rights): KMS removes it together with the key when
  the window ends, so the alias stays taken until then.
* KMS keys do not decrypt here: KMS decrypts only with RSAES_OAEP_SHA_1/SHA_256 and only with
  ENCRYPT_DECRYPT keys, while a KMS key's usage is fixed at creation and these are SIGN_VERIFY (and
  ``Decrypt`` is not among the rights). RSA handles refuse ``decrypt`` with :data:`NO_DECRYPT_REASON`.
* Authentication: an access key ID (a token property) whose secret access key is the token's
  authentication code (stored encrypted by the services), or the service account role, i.e. boto3's
  default credential chain (instance profile, ECS/EKS role, environment); the code is then unused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
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
from .remote_keys import (
    ClientPool,
    CryptoTokenUnavailableError,
    KeyServiceAccessDeniedError,
    RemoteECPrivateKey,
    RemoteRSAPrivateKey,
    SignRequest,
    check_curve_hash,
)

if TYPE_CHECKING:
    from ..models import CryptoTokenKeyPair

logger = logging.getLogger("cryptotokens.aws")

AUTH_ACCESS_KEY = "ACCESS_KEY"
AUTH_SERVICE_ACCOUNT_ROLE = "SERVICE_ACCOUNT_ROLE"
AUTH_METHODS = ((AUTH_ACCESS_KEY, "Access Key ID and Secret"), (AUTH_SERVICE_ACCOUNT_ROLE, "Service Account Role"))

# The IAM rights of the documented access policy, and the boto3 method of each.
KMS_RIGHTS: dict[str, str] = {
    "ListAliases": "list_aliases",
    "GetPublicKey": "get_public_key",
    "CreateAlias": "create_alias",
    "CreateKey": "create_key",
    "ScheduleKeyDeletion": "schedule_key_deletion",
    "Sign": "sign",
}

KMS_KEY_SPECS: dict[tuple[str, int | str | None], str] = {
    ("RSA", 2048): "RSA_2048",
    ("RSA", 3072): "RSA_3072",
    ("RSA", 4096): "RSA_4096",
    ("EC", "secp256r1"): "ECC_NIST_P256",
    ("EC", "secp384r1"): "ECC_NIST_P384",
    ("EC", "secp521r1"): "ECC_NIST_P521",
}
SUPPORTED_SPECS_TEXT = "RSA 2048/3072/4096 and EC P-256/P-384/P-521"

SIGNING_ALGORITHMS: dict[tuple[str, str], str] = {
    ("PKCS1v15", "sha256"): "RSASSA_PKCS1_V1_5_SHA_256",
    ("PKCS1v15", "sha384"): "RSASSA_PKCS1_V1_5_SHA_384",
    ("PKCS1v15", "sha512"): "RSASSA_PKCS1_V1_5_SHA_512",
    ("PSS", "sha256"): "RSASSA_PSS_SHA_256",
    ("PSS", "sha384"): "RSASSA_PSS_SHA_384",
    ("PSS", "sha512"): "RSASSA_PSS_SHA_512",
    ("ECDSA", "sha256"): "ECDSA_SHA_256",
    ("ECDSA", "sha384"): "ECDSA_SHA_384",
    ("ECDSA", "sha512"): "ECDSA_SHA_512",
}

# KMS signs RAW messages up to 4096 bytes (it hashes them itself); larger input is hashed here and sent
# as MessageType=DIGEST. Sending small messages RAW also keeps the signature path testable with moto,
# which ignores MessageType and always hashes what it gets.
RAW_MESSAGE_LIMIT = 4096
PENDING_WINDOW_DAYS = 7  # the KMS minimum
MAX_ALIAS_PAGES = 1000  # ListAliases pages of 100: far more aliases than an account allows per region

# KMS alias names: "alias/" + [A-Za-z0-9/_-], 256 characters at most, and "alias/aws/" is AWS's own.
ALIAS_NAME_RE = re.compile(r"[A-Za-z0-9/_-]{1,250}")
REGION_RE = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d{1,2}")
ACCESS_KEY_ID_RE = re.compile(r"\w{1,128}")

AUTH_ERROR_CODES = {
    "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature", "InvalidClientTokenId",
    "SignatureDoesNotMatch", "ExpiredTokenException", "MissingAuthenticationToken", "AuthFailure",
}
ACCESS_DENIED_CODES = {"AccessDeniedException", "AccessDenied"}
KEY_STATE_CODES = {"KMSInvalidStateException", "DisabledException"}


class KMSKeyStateError(CryptoTokenError):
    """The KMS key exists but cannot be used now (pending deletion, disabled)."""


# Per process: a random key so the pool can tell secrets apart without keeping a plain hash of them.
_POOL_KEY_SALT = os.urandom(16)
_clients: ClientPool[Any] = ClientPool()


@dataclass(frozen=True)
class KMSConnection:
    """What a KMS client is built from. ``secret`` is excluded from repr so it never reaches a log."""

    token_name: str
    region: str
    auth_method: str
    access_key_id: str
    secret: str = field(repr=False)
    endpoint_url: str
    token_version: int

    @property
    def pool_key(self) -> tuple:
        # The token version makes re-activation build fresh clients; the secret's keyed digest keeps a
        # wrong secret (e.g. a failed activation with the same key ID) from sharing a client with the right one.
        secret_tag = hmac.new(_POOL_KEY_SALT, self.secret.encode(), hashlib.sha256).hexdigest()
        return (self.region, self.access_key_id, self.endpoint_url, self.token_version, self.auth_method, secret_tag)

    @property
    def where(self) -> str:
        return self.endpoint_url or f"region {self.region}"


def _make_client(conn: KMSConnection):
    if conn.auth_method == AUTH_ACCESS_KEY:
        session = boto3.session.Session(
            aws_access_key_id=conn.access_key_id, aws_secret_access_key=conn.secret, region_name=conn.region
        )
    else:
        session = boto3.session.Session(region_name=conn.region)  # the default credential chain
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30,
        user_agent_extra="pki-cryptotoken",
    )
    return session.client("kms", endpoint_url=conn.endpoint_url or None, config=config)


def clear_clients() -> None:
    """Drop every pooled KMS client (tests; after changing endpoints or credentials process-wide)."""
    _clients.clear()


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code.isdigit():
        # Some KMS-compatible endpoints answer a JSON-protocol call with an XML error body.
        found = re.search(r"<Code>(\w+)</Code>", str(error.get("Message", "")))
        if found:
            return found.group(1)
    return code


def _translate(exc: Exception, conn: KMSConnection, operation: str) -> CryptoTokenError:
    """A typed error that says what went wrong, without the secret or the service's full reply."""
    token = conn.token_name
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        if conn.auth_method == AUTH_SERVICE_ACCOUNT_ROLE:
            return AuthenticationCodeError(
                f"No AWS credentials for crypto token '{token}': with Service Account Role the instance's IAM "
                "role (boto3's default credential chain) must provide them."
            )
        return AuthenticationCodeError(f"Incomplete AWS credentials for crypto token '{token}'.")
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ACCESS_DENIED_CODES:
            rights = ", ".join(f"kms:{r}" for r in KMS_RIGHTS)
            return KeyServiceAccessDeniedError(
                f"AWS KMS denied kms:{operation} to the credentials of crypto token '{token}': the IAM policy "
                f"of the user or role must allow {rights}."
            )
        if code in AUTH_ERROR_CODES or status in (401, 403):
            return AuthenticationCodeError(
                f"AWS KMS rejected the credentials of crypto token '{token}' ({code}): check the access key ID "
                "and the secret access key (the authentication code)."
            )
        if code == "NotFoundException":
            return KeyPairNotFoundError(f"The KMS key of crypto token '{token}' does not exist in AWS KMS.")
        if code == "AlreadyExistsException":
            return KeyPairExistsError(f"The KMS alias already exists for crypto token '{token}'.")
        if code in KEY_STATE_CODES:
            return KMSKeyStateError(
                f"The KMS key of crypto token '{token}' cannot be used ({code}): it is disabled or pending deletion."
            )
        message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
        return CryptoTokenError(f"AWS KMS refused {operation} for crypto token '{token}': {code}: {message}")
    if isinstance(exc, BotoCoreError):
        return CryptoTokenUnavailableError(
            f"AWS KMS ({conn.where}) cannot be reached for crypto token '{token}': {type(exc).__name__}."
        )
    return CryptoTokenError(f"AWS KMS {operation} failed for crypto token '{token}': {type(exc).__name__}.")


def _call(conn: KMSConnection, operation: str, **params: Any) -> dict[str, Any]:
    """Run one KMS operation with the pooled client; failures become typed errors and drop the client."""
    method = KMS_RIGHTS.get(operation)
    if method is None:  # a programming error: the documented IAM policy would refuse it in production
        raise CryptoTokenError(f"kms:{operation} is not among the rights of an AWS KMS crypto token.")
    key = conn.pool_key
    client = _clients.get(key, partial(_make_client, conn))
    try:
        return getattr(client, method)(**params)
    except (ClientError, BotoCoreError) as exc:
        error = _translate(exc, conn, operation)
        reason = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        if isinstance(error, KeyPairNotFoundError | KeyPairExistsError | KMSKeyStateError):
            # An answer about a key (sometimes the expected one): the client itself is fine.
            logger.debug("AWS KMS %s for crypto token %r: %s", operation, conn.token_name, reason)
        else:
            # Credentials or connections may be what failed: the next call starts with a fresh client.
            _clients.discard(key, client)
            logger.warning("AWS KMS %s failed for crypto token %r: %s", operation, conn.token_name, reason)
        raise error from None


def kms_alias_name(alias: str) -> str:
    """The KMS alias of a key pair alias, or a CryptoTokenError saying which KMS rule it breaks."""
    if not ALIAS_NAME_RE.fullmatch(alias):
        raise CryptoTokenError(
            f"Key pair alias '{alias}' cannot be a KMS alias: use 1 to 250 letters, digits, '/', '_' or '-'."
        )
    if alias.lower().startswith("aws/") or alias.lower() == "aws":
        raise CryptoTokenError(f"Key pair alias '{alias}' cannot be a KMS alias: 'aws/' is reserved for AWS.")
    return f"alias/{alias}"


def _aliases(conn: KMSConnection):
    """Every alias the credentials can list, page by page (ListAliases)."""
    marker: str | None = None
    for _page in range(MAX_ALIAS_PAGES):
        params: dict[str, Any] = {"Limit": 100}
        if marker:
            params["Marker"] = marker
        page = _call(conn, "ListAliases", **params)
        yield from page.get("Aliases", [])
        if not page.get("Truncated") or not page.get("NextMarker"):
            return
        marker = page["NextMarker"]
    raise CryptoTokenError(f"AWS KMS listed more than {MAX_ALIAS_PAGES * 100} aliases; giving up.")


def _alias_exists(conn: KMSConnection, alias_name: str) -> bool:
    return any(a.get("AliasName") == alias_name for a in _aliases(conn))


def _device_key(conn: KMSConnection, alias_name: str) -> DeviceKey:
    """One KMS alias as a device key: its public key and key ARN from GetPublicKey (the only read right)."""
    alias = alias_name.removeprefix("alias/")
    try:
        reply = _call(conn, "GetPublicKey", KeyId=alias_name)
    except (KMSKeyStateError, KeyPairNotFoundError) as exc:
        return DeviceKey(alias, "", "", problem=str(exc).split(": ", 1)[0].rstrip("."))
    except CryptoTokenError:
        return DeviceKey(alias, "", "", problem="it is not an asymmetric key (GetPublicKey refused it)")
    usage = reply.get("KeyUsage", "")
    if str(reply.get("KeySpec", "")).startswith(("SYMMETRIC", "HMAC")):
        return DeviceKey(alias, "", str(reply["KeySpec"]), problem="it is not an asymmetric key")
    try:
        public_key = load_der_public_key(reply["PublicKey"])
        spec = key_spec_of(public_key)
    except (KeyError, ValueError, UnsupportedKeySpecError):
        return DeviceKey(alias, "", str(reply.get("KeySpec", "")), problem="its key type is not supported")
    problem = "" if usage == "SIGN_VERIFY" else f"its key usage is {usage or 'unknown'}, not SIGN_VERIFY"
    return DeviceKey(alias, spec.algorithm, spec.spec_value, public_key=public_key,
                     reference=str(reply.get("KeyId", "")).encode() or None, problem=problem)


def _key_id_of(key_arn: str) -> str:
    """The bare key ID of a key ARN. ScheduleKeyDeletion gets the ID: our keys live in the client's own
    account and region, where KMS takes either form, and moto only understands the ID there."""
    return key_arn.rsplit(":key/", 1)[-1]


def _sign(conn: KMSConnection, key_id: str, public_key, request: SignRequest) -> bytes:
    """The signer behind a KMS key handle."""
    if request.scheme == "ECDSA":
        check_curve_hash(public_key.curve, request.hash, "AWS KMS")
    algorithm = SIGNING_ALGORITHMS[(request.scheme, request.hash.name)]
    if not request.prehashed and len(request.data) <= RAW_MESSAGE_LIMIT:
        message, message_type = request.data, "RAW"
    else:
        message, message_type = request.digest(), "DIGEST"
    reply = _call(conn, "Sign", KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=algorithm)
    return reply["Signature"]  # RSA signatures as is; KMS ECDSA signatures are DER already


NO_DECRYPT_REASON = (
    "AWS KMS decrypts only with RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256 and only with ENCRYPT_DECRYPT keys, while "
    "the keys of a KMS crypto token are SIGN_VERIFY (KMS fixes a key's usage when it is created). For SCEP with a "
    "CA on AWS KMS, give the SCEP alias a separate RA key pair (on a token that can decrypt) to decrypt requests."
)


@registry.register
class AWSKMSCryptoTokenBackend(CryptoTokenBackend):
    """Key pairs in AWS KMS; see the module documentation for aliases, rights and authentication."""

    type_name = "AWSKMSCryptoToken"
    label = "AWS KMS"
    parameters = (
        BackendParameter(
            "auth_method", "Authentication method", choices=AUTH_METHODS, default=AUTH_ACCESS_KEY,
            help_text="Access Key ID and Secret: an IAM user's access key, its secret is the authentication "
            "code. Service Account Role: the IAM role of the instance this runs on.",
        ),
        BackendParameter("region", "Region", help_text="The AWS region of the KMS keys, e.g. eu-west-1."),
        BackendParameter(
            "access_key_id", "Access Key ID", required=False,
            help_text="Required with Access Key ID and Secret.",
        ),
    )

    # -- configuration -------------------------------------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        """The token's KMS settings, validated; a clear CryptoTokenError names the first bad one."""
        props = self.token.properties or {}
        method = str(props.get("auth_method") or AUTH_ACCESS_KEY).strip()
        if method not in dict(AUTH_METHODS):
            choices = ", ".join(dict(AUTH_METHODS))
            raise CryptoTokenError(f"Unknown AWS authentication method '{method}': choose one of {choices}.")
        region = str(props.get("region") or "").strip()
        if not REGION_RE.fullmatch(region):
            raise CryptoTokenError(f"'{region}' is not an AWS region name (such as eu-west-1).")
        access_key_id = str(props.get("access_key_id") or "").strip()
        if method == AUTH_ACCESS_KEY and not ACCESS_KEY_ID_RE.fullmatch(access_key_id):
            raise CryptoTokenError("An access key ID (letters and digits) is required with Access Key ID and Secret.")
        if method == AUTH_SERVICE_ACCOUNT_ROLE:
            access_key_id = ""
        return {"auth_method": method, "region": region, "access_key_id": access_key_id}

    def _connection(self, auth_code: str) -> KMSConnection:
        props = self._properties()
        return KMSConnection(
            token_name=self.token.name, region=props["region"], auth_method=props["auth_method"],
            access_key_id=props["access_key_id"],
            secret=auth_code if props["auth_method"] == AUTH_ACCESS_KEY else "",
            endpoint_url=getattr(settings, "AWS_KMS_ENDPOINT_URL", "") or "",
            token_version=int(self.token.version or 1),
        )

    # -- the backend interface ---------------------------------------------------------------------------

    def initialize(self, auth_code: str) -> None:
        """Store the normalized settings and prove the credentials work before the token is saved."""
        self.token.properties = {**(self.token.properties or {}), **self._properties()}
        self.check_auth_code(auth_code)

    def check_auth_code(self, auth_code: str) -> None:
        """One ListAliases call: it needs valid credentials and the kms:ListAliases right."""
        _call(self._connection(auth_code), "ListAliases", Limit=1)

    def list_device_keys(self, auth_code: str) -> list[DeviceKey]:
        """The keys the credentials can see by alias (ListAliases, then GetPublicKey per alias); AWS's own
        ``alias/aws/...`` keys and aliases without a key are left out."""
        conn = self._connection(auth_code)
        names = sorted(a["AliasName"] for a in _aliases(conn)
                       if a.get("TargetKeyId") and not str(a.get("AliasName", "")).startswith("alias/aws/"))
        return [_device_key(conn, name) for name in names]

    def adoptable_key(self, alias: str, auth_code: str) -> GeneratedKeyPair:
        """The KMS key behind ``alias/<alias>``, by its ARN and public key (the key stays in KMS)."""
        conn = self._connection(auth_code)
        alias_name = kms_alias_name(alias)
        if not _alias_exists(conn, alias_name):
            raise KeyPairNotFoundError(f"AWS KMS has no alias {alias_name} for crypto token '{self.token.name}'.")
        key = _device_key(conn, alias_name)
        if not key.usable or key.public_key is None:
            raise CryptoTokenError(f"KMS key {alias_name} of crypto token '{self.token.name}' cannot be used: "
                                   f"{key.problem or 'no public key'}.")
        return GeneratedKeyPair(public_key=key.public_key, private_data=key.reference)

    def supported(self, spec: KeySpec) -> None:
        if (spec.algorithm, spec.size if spec.algorithm == "RSA" else spec.curve) not in KMS_KEY_SPECS:
            raise UnsupportedKeySpecError(
                f"AWS KMS crypto tokens hold {SUPPORTED_SPECS_TEXT} keys, not {spec}."
            )

    def generate_key_pair(self, alias: str, spec: KeySpec, auth_code: str) -> GeneratedKeyPair:
        self.supported(spec)
        alias_name = kms_alias_name(alias)
        conn = self._connection(auth_code)
        if _alias_exists(conn, alias_name):
            raise KeyPairExistsError(
                f"Key pair alias '{alias}' already exists in AWS KMS ({alias_name}) for crypto token "
                f"'{self.token.name}'. An alias of a key scheduled for deletion stays taken until KMS deletes the key."
            )
        key_spec = KMS_KEY_SPECS[(spec.algorithm, spec.size if spec.algorithm == "RSA" else spec.curve)]
        metadata = _call(
            conn, "CreateKey", KeySpec=key_spec, KeyUsage="SIGN_VERIFY",
            Description=f"pki crypto token '{self.token.name}', key pair '{alias}'",
        )["KeyMetadata"]
        key_arn = metadata.get("Arn") or metadata["KeyId"]
        try:
            _call(conn, "CreateAlias", AliasName=alias_name, TargetKeyId=metadata["KeyId"])
            public_key = load_der_public_key(_call(conn, "GetPublicKey", KeyId=key_arn)["PublicKey"])
        except KeyPairExistsError:
            self._schedule_deletion(conn, key_arn)  # another process took the alias between the check and now
            raise KeyPairExistsError(
                f"Key pair alias '{alias}' already exists in AWS KMS ({alias_name}) for crypto token "
                f"'{self.token.name}'."
            ) from None
        except Exception:
            self._schedule_deletion(conn, key_arn)  # leave no orphan key behind a failed generation
            raise
        return GeneratedKeyPair(
            public_key=public_key, private_data=key_arn.encode(),
            extra={"kms_key_id": metadata["KeyId"], "kms_alias": alias_name},
        )

    def load_private_key(
        self, entry: CryptoTokenKeyPair, auth_code: str
    ) -> RemoteRSAPrivateKey | RemoteECPrivateKey:
        if not entry.private_data:
            raise KeyPairNotFoundError(f"Key pair '{entry.alias}' has no KMS key reference.")
        key_id = bytes(entry.private_data).decode()
        public_key = load_der_public_key(bytes(entry.public_key_der))
        conn = self._connection(auth_code)
        label = f"'{entry.alias}' of crypto token '{self.token.name}' (AWS KMS)"
        signer = partial(_sign, conn, key_id, public_key)
        if isinstance(public_key, rsa.RSAPublicKey):
            return RemoteRSAPrivateKey(public_key, signer, label, no_decrypt_reason=NO_DECRYPT_REASON)
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return RemoteECPrivateKey(public_key, signer, label)
        raise UnsupportedKeySpecError(f"Key pair {label} has an unsupported key type.")

    def remove_key_pair(self, entry: CryptoTokenKeyPair, auth_code: str) -> None:
        """Schedule the KMS key for deletion (7 days); KMS removes its alias with it."""
        if not entry.private_data:
            return
        conn = self._connection(auth_code)
        key_arn = bytes(entry.private_data).decode()
        try:
            _call(conn, "ScheduleKeyDeletion", KeyId=_key_id_of(key_arn), PendingWindowInDays=PENDING_WINDOW_DAYS)
        except (KeyPairNotFoundError, KMSKeyStateError):
            pass  # already gone or already pending deletion: the outcome asked for

    @staticmethod
    def _schedule_deletion(conn: KMSConnection, key_arn: str) -> None:
        """Best-effort clean-up after a failed generation; the original error is what the caller sees."""
        try:
            _call(conn, "ScheduleKeyDeletion", KeyId=_key_id_of(key_arn), PendingWindowInDays=PENDING_WINDOW_DAYS)
        except CryptoTokenError:
            logger.warning("Could not schedule deletion of an unused KMS key of crypto token %r", conn.token_name)
