"""EJBCA's SCEP properties (``<alias>.<key> = value``) to and from alias settings. Pure: no database.

``config scep uploadfile --alias A --file F`` reads only the lines ``A.<key>`` of the file (other aliases'
lines are ignored, as EJBCA does), so the seed's example file with ``scep.operationmode = ca`` and
``uploaded.includeca = true`` sets the mode of alias ``scep`` and nothing else. The legacy key
``<alias>.ra.createOrEditUser = true|false`` is read as ``operationmode = ra|ca``.

Object references (CAs, profiles, tokens) stay names here; :mod:`protocols.scep.services` resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pki.errors import ValidationError
from pki.ids import parse_decimal

# Shown instead of a stored secret; uploading it back keeps the stored value.
MASK = "******"


@dataclass(frozen=True)
class Key:
    """One property: its key after ``<alias>.``, the setting it fills and how its value is read."""

    key: str
    setting: str
    kind: str = "str"  # str, bool, int, mode, scheme, secret, intune, intune_secret


# In EJBCA's order (ScepConfiguration.getAllAliasKeys), then this server's own additions.
KEYS: tuple[Key, ...] = (
    Key("operationmode", "operation_mode", "mode"),
    Key("includeca", "include_ca", "bool"),
    Key("returnCaChainInGetCaCert", "return_ca_chain", "bool"),
    # MD5-signed requests accepted, and SHA-1/MD5 in replies (models.LEGACY_DIGEST_HELP); SHA-1 requests always.
    Key("allowLegacyDigestAlgorithm", "allow_legacy_digest", "bool"),
    Key("ra.certificateProfile", "ra_certificate_profile"),
    Key("ra.entityProfile", "ra_end_entity_profile"),
    Key("ra.defaultCA", "ra_default_ca"),
    Key("ra.authPwd", "ra_auth_password", "secret"),
    Key("ra.namegenerationscheme", "ra_name_generation_scheme", "scheme"),
    Key("ra.namegenerationparameters", "ra_name_generation_parameters"),
    Key("ra.namegenerationprefix", "ra_name_generation_prefix"),
    Key("ra.namegenerationpostfix", "ra_name_generation_postfix"),
    Key("clientCertificateRenewal", "client_certificate_renewal", "bool"),
    Key("clientCertificateRenewalWithOldKey", "allow_client_certificate_renewal_with_old_key", "bool"),
    Key("useIntune", "use_intune", "bool"),
    Key("intuneAuthority", "authority", "intune"),
    Key("intuneAadAppId", "app_id", "intune"),
    Key("intuneAadUseKeyBinding", "use_key_binding", "intune"),
    Key("intuneAadAppKey", "intune_app_key", "secret"),
    Key("intuneAadKeyBinding", "key_binding", "intune"),
    Key("intuneTenant", "tenant", "intune"),
    Key("intuneResourceUrl", "resource_url", "intune"),
    Key("intuneGraphApiVersion", "graph_api_version", "intune"),
    Key("intuneGraphResourceUrl", "graph_resource_url", "intune"),
    Key("intuneProxyHost", "proxy_host", "intune"),
    Key("intuneProxyPort", "proxy_port", "intune"),
    Key("intuneProxyUser", "proxy_user", "intune"),
    Key("intuneProxyPass", "intune_proxy_pass", "secret"),
    # This server's additions.
    Key("enabled", "enabled", "bool"),
    Key("defaultca", "default_ca"),
    Key("allowDes", "allow_des", "bool"),
    Key("maxBodySize", "max_body_size", "int"),
    Key("ra.cryptoToken", "ra_crypto_token"),
    Key("ra.keyAlias", "ra_key_alias"),
    Key("challengeValidator", "challenge_validator"),
)
KEY_BY_NAME = {k.key.lower(): k for k in KEYS}
# Other spellings read on upload: the GUI field name EJBCA uses for the old-key setting, the legacy RA flag.
SYNONYMS = {
    "allowclientcertificaterenewawitholdkey": "clientCertificateRenewalWithOldKey",
    "allowclientcertificaterenewalwitholdkey": "clientCertificateRenewalWithOldKey",
}
LEGACY_RA_FLAG = "ra.createoredituser"  # lower-cased

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java properties file: ``key = value`` or ``key: value`` or ``key value``, ``#``/``!``
    comments, backslash line continuations and escapes. Later lines win."""
    props: dict[str, str] = {}
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # an odd number of backslashes continues the line
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    for line in logical:
        key, value = _split(line)
        if key:
            props[_unescape(key)] = _unescape(value)
    return props


def _split(line: str) -> tuple[str, str]:
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t":
            break
        i += 1
    key = line[:i]
    rest = line[i:].lstrip(" \t")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t")
    return key, rest.rstrip()


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt == "u" and i + 6 <= len(s):
                try:
                    out.append(chr(int(s[i + 2:i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValidationError(f"{key}: '{value}' is not true or false.", field=key)


def alias_properties(props: dict[str, str], alias: str) -> dict[str, str]:
    """The entries of ``props`` that belong to ``alias`` (``<alias>.<key>``), keyed by ``<key>``."""
    prefix = alias + "."
    return {k[len(prefix):]: v for k, v in props.items() if k.startswith(prefix)}


def settings_from_properties(values: dict[str, str]) -> tuple[dict[str, object], list[str]]:
    """Typed settings from one alias's properties (``<key>`` -> value without the alias prefix).

    Returns (settings, ignored keys). Settings hold model field names; Intune values are under
    ``intune_settings`` (a dict); secrets equal to :data:`MASK` are left out (keep the stored one);
    object references stay names. Raises :class:`ValidationError` naming the property on a bad value.
    """
    settings: dict[str, object] = {}
    intune: dict[str, str] = {}
    ignored: list[str] = []
    for raw_key, value in values.items():
        low = raw_key.lower()
        if low == LEGACY_RA_FLAG:
            settings["operation_mode"] = "ra" if _bool(raw_key, value) else "ca"
            continue
        low = SYNONYMS.get(low, raw_key).lower()
        spec = KEY_BY_NAME.get(low)
        if spec is None:
            ignored.append(raw_key)
            continue
        value = value.strip()
        if not value and spec.kind in ("int", "mode", "scheme"):
            continue  # an empty value keeps the setting as it is
        if spec.kind == "bool":
            settings[spec.setting] = _bool(raw_key, value)
        elif spec.kind == "int":
            number = parse_decimal(value)
            if number is None or number < 1:
                raise ValidationError(f"{raw_key}: '{value}' is not a positive number.", field=raw_key)
            settings[spec.setting] = number
        elif spec.kind == "mode":
            if value.lower() not in ("ca", "ra"):
                raise ValidationError(f"{raw_key}: '{value}' is neither ca nor ra.", field=raw_key)
            settings[spec.setting] = value.lower()
        elif spec.kind == "scheme":
            if value.upper() not in ("DN", "RANDOM", "FIXED", "USERNAME"):
                raise ValidationError(f"{raw_key}: '{value}' is not DN, RANDOM, FIXED or USERNAME.", field=raw_key)
            settings[spec.setting] = value.upper()
        elif spec.kind == "secret":
            if value != MASK:
                settings[spec.setting] = "" if value.lower() == "none" and spec.setting == "ra_auth_password" \
                    else value
        elif spec.kind == "intune":
            intune[spec.setting] = value
        else:
            settings[spec.setting] = value
    if intune:
        settings["intune_settings"] = intune
    return settings, ignored


def dump_properties(alias: str, values: dict[str, object]) -> str:
    """``<alias>.<key>=value`` lines in EJBCA's key order. ``values`` maps setting names to values (object
    references as names, secrets as whether one is set)."""
    lines = []
    intune = values.get("intune_settings") or {}
    for spec in KEYS:
        if spec.kind == "intune":
            value: object = intune.get(spec.setting, "")  # type: ignore[union-attr]
        else:
            value = values.get(spec.setting, "")
        if spec.kind == "secret":
            value = MASK if value else ""
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif value is None:
            value = ""
        lines.append(f"{alias}.{spec.key}={_escape(str(value))}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
