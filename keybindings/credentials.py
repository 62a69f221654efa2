"""What an authentication binding lends to others: the client ``SSLContext`` of outgoing mTLS, the certificate
and key of the Azure Key Vault login, signed JWT client assertions (Azure AD, Intune), and the token layer's
"who uses this key" answer. Split from :mod:`keybindings.services`, which manages the bindings themselves."""

from __future__ import annotations

import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from cryptotokens.errors import CryptoTokenError
from cryptotokens.services import get_private_key_by_id
from pki.errors import ValidationError, as_pki_error
from pki.models import CertificateAuthority
from pki.x509.algorithms import signature_algorithm

from . import tls
from .choices import BindingStatus, BindingType, CertificateState
from .models import InternalKeyBinding

SOFT_TOKEN = "SoftCryptoToken"


# --- TLS -------------------------------------------------------------------------------------------------


def _ca_tree() -> tuple[dict[int, x509.Certificate], dict[int, int | None]]:
    certs: dict[int, x509.Certificate] = {}
    parents: dict[int, int | None] = {}
    for ca in CertificateAuthority.objects.exclude(certificate_der=None):
        cert = ca.certificate
        if cert is not None:
            certs[ca.pk] = cert
            parents[ca.pk] = ca.signed_by_id
    return certs, parents


def _chain(ca: CertificateAuthority) -> list[x509.Certificate]:
    out, node, seen = [], ca, set()
    while node is not None and node.pk not in seen:
        seen.add(node.pk)
        if node.certificate is not None:
            out.append(node.certificate)
        node = node.signed_by
    return out


def ssl_context_for(binding: InternalKeyBinding) -> ssl.SSLContext:
    """The client ``SSLContext`` of an active authentication binding: its certificate and key, the server
    certificate checked against its trusted entries, and its protocol/cipher pairs (see :mod:`keybindings.tls`).

    Only a soft token's key can be used: Python's ``ssl`` loads the private key itself, and a PKCS#11 HSM,
    Azure Key Vault or AWS KMS key never leaves its device."""
    binding = InternalKeyBinding.objects.select_related("crypto_token", "certificate__ca").get(pk=binding.pk)
    if binding.binding_type != BindingType.AUTHENTICATION:
        raise ValidationError(f"Key binding '{binding.name}' is not an authentication key binding.")
    if binding.status != BindingStatus.ACTIVE:
        raise ValidationError(f"Key binding '{binding.name}' is disabled.")
    if binding.certificate_state() != CertificateState.VALID:
        raise ValidationError(f"Key binding '{binding.name}' has no valid certificate.")
    if binding.crypto_token.token_type != SOFT_TOKEN:
        raise ValidationError(
            f"Key binding '{binding.name}' keeps its key on a {binding.crypto_token.token_type}: Python's ssl module "
            "needs the private key itself, and an HSM or cloud key never leaves its device.")
    try:
        key = get_private_key_by_id(binding.crypto_token_id, binding.key_pair_alias)
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None
    suites_text = binding.protocol_and_cipher_suites or tls.allowed_entries()
    suites = [tls.parse_entry(e) for e in tls.validate_entries(suites_text)]
    certs, parents = _ca_tree()
    entries = binding.trusted_certificates or []
    if not entries:
        rules = tls.TrustRules(frozenset(certs), frozenset())
        anchors = list(certs.values())
    else:
        ca_ids = frozenset(e["ca_id"] for e in entries if not e.get("serial"))
        pins = frozenset((certs[e["ca_id"]].subject.public_bytes(), int(e["serial"], 16))
                         for e in entries if e.get("serial") and e["ca_id"] in certs)
        rules = tls.TrustRules(ca_ids, pins)
        anchors = [certs[e["ca_id"]] for e in entries if e["ca_id"] in certs]
    return tls.build_client_context(suites=suites, anchors=anchors, rules=rules, ca_certs=certs, parents=parents,
                                    client_cert=binding.certificate.certificate,
                                    chain=_chain(binding.certificate.ca)[:-1] if binding.certificate.ca else [],
                                    key=key)


# --- the Azure Key Vault login (registered with the token layer) -----------------------------------------


def credentials_pem(name: str) -> bytes:
    """Certificate and private key of an active binding, PEM, for a TLS client-certificate login.

    Only for keys a soft token already holds in this process: a key in an HSM or a cloud service never
    leaves it, so such a binding cannot serve a library that wants the key itself.
    """
    binding = InternalKeyBinding.objects.select_related("crypto_token", "certificate").filter(name=name).first()
    if binding is None:
        raise CryptoTokenError(f"Key binding '{name}' does not exist.")
    if binding.status != BindingStatus.ACTIVE:
        raise CryptoTokenError(f"Key binding '{name}' is disabled.")
    if binding.certificate is None:
        raise CryptoTokenError(f"Key binding '{name}' has no certificate yet.")
    if binding.crypto_token.token_type != SOFT_TOKEN:
        raise CryptoTokenError(f"Key binding '{name}' keeps its key on a {binding.crypto_token.token_type}; "
                               "client-certificate login needs a soft token key.")
    key = get_private_key_by_id(binding.crypto_token_id, binding.key_pair_alias)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return binding.certificate.certificate.public_bytes(serialization.Encoding.PEM) + key_pem


def client_assertion(name: str, *, audience: str, client_id: str, lifetime: int = 300) -> str:
    """A signed JWT client assertion (RFC 7523) for an OAuth client-credentials login with the certificate of the
    active authentication binding ``name`` (Azure AD's certificate credentials: ``x5t`` is the certificate's
    SHA-1 thumbprint). Signed through the key handle, so an HSM or cloud key works as well as a soft one."""
    import base64
    import json
    import uuid

    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    binding = InternalKeyBinding.objects.select_related("certificate").filter(name=name).first()
    if binding is None or binding.binding_type != BindingType.AUTHENTICATION:
        raise ValidationError(f"No authentication key binding '{name}'.")
    if binding.status != BindingStatus.ACTIVE or binding.certificate_state() != CertificateState.VALID:
        raise ValidationError(f"Key binding '{name}' is not active with a valid certificate.")
    cert = binding.certificate.certificate
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwa, alg = "RS256", signature_algorithm("SHA256WithRSA")
    elif isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size == 256:
        jwa, alg = "ES256", signature_algorithm("SHA256withECDSA")
    else:
        raise ValidationError(f"Key binding '{name}' has a key JWT client assertions cannot use (RSA or P-256).")
    now = int(timezone.now().timestamp())
    header = {"alg": jwa, "typ": "JWT", "x5t": b64(cert.fingerprint(hashes.SHA1()))}  # noqa: S303 - Azure's x5t
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()), "nbf": now,
              "iat": now, "exp": now + lifetime}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
    try:
        key = get_private_key_by_id(binding.crypto_token_id, binding.key_pair_alias)
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None
    signature = alg.sign(key, signing_input)
    if jwa == "ES256":  # JWS wants r||s, not DER
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s_ = decode_dss_signature(signature)
        signature = r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64(signature)}"


def bindings_using_token(token, alias: str | None) -> list[str]:
    """Key bindings whose key (current or next) lives on ``token`` (optionally: under ``alias``)."""
    qs = InternalKeyBinding.objects.filter(crypto_token=token)
    if alias is not None:
        from django.db.models import Q

        qs = qs.filter(Q(key_pair_alias=alias) | Q(next_key_pair_alias=alias))
    return [f"key binding '{name}'" for name in qs.values_list("name", flat=True)]


def authentication_binding_choices() -> list[tuple[str, str]]:
    """(name, label) of authentication bindings, for forms that pick one (Azure login, Intune)."""
    return [(b.name, f"{b.name} ({b.get_status_display().lower()})")
            for b in InternalKeyBinding.objects.authentication().only("name", "status")]

