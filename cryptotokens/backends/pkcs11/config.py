"""A PKCS#11 token's non-secret properties: which library, which slot, which extra key attributes.

The properties store *names* (of ``settings.PKCS11_LIBRARIES`` and ``settings.PKCS11_ATTRIBUTE_FILES``),
resolved to paths at use, so a token row keeps working when a module moves and never points the
server at a file an operator typed in.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from pkcs11 import Attribute
from pkcs11.attributes import ATTRIBUTE_TYPES, handle_bool, handle_bytes, handle_date, handle_str

from ...errors import CryptoTokenError
from ..base import BackendParameter

SLOT_ID, SLOT_INDEX, SLOT_LABEL = "SLOT_ID", "SLOT_INDEX", "SLOT_LABEL"
REFERENCE_TYPES = ((SLOT_ID, "Slot ID"), (SLOT_INDEX, "Slot index"), (SLOT_LABEL, "Token label"))

# The backend owns these: it finds keys by label and id, and keys must persist on the token.
_RESERVED = {Attribute.CLASS, Attribute.KEY_TYPE, Attribute.LABEL, Attribute.ID, Attribute.TOKEN}


def parameters() -> tuple[BackendParameter, ...]:
    """The declared form fields; choices come from the settings as they are now (tests override them)."""
    libraries = tuple((name, name) for name in settings.PKCS11_LIBRARIES)
    attribute_files = (("", "None"), *((name, name) for name in settings.PKCS11_ATTRIBUTE_FILES))
    return (
        BackendParameter("library", "PKCS#11 library", choices=libraries,
                         default=next(iter(settings.PKCS11_LIBRARIES), None),
                         help_text="A module configured in PKCS11_LIBRARIES"),
        BackendParameter("reference_type", "PKCS#11 reference type", choices=REFERENCE_TYPES, default=SLOT_LABEL,
                         help_text="How the reference names the slot: its id, its index or its token's label"),
        BackendParameter("reference", "PKCS#11 reference", help_text="The slot id, slot index or token label"),
        BackendParameter("attribute_file", "PKCS#11 attribute file", required=False, choices=attribute_files,
                         default="", help_text="Extra key attributes, only for HSMs that need them"),
    )


@dataclass(frozen=True)
class SlotConfig:
    """Where a token's keys live, resolved from its properties."""

    library_name: str
    library_path: str
    reference_type: str
    reference: str
    attribute_file: str = ""

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> SlotConfig:
        """Validate the properties and resolve the library; raises CryptoTokenError naming what is wrong."""
        name = str(properties.get("library") or "").strip()
        configured = settings.PKCS11_LIBRARIES
        if not name:
            raise CryptoTokenError(f"Choose a PKCS#11 library (configured: {', '.join(configured) or 'none'}).")
        path = configured.get(name)
        if path is None:
            raise CryptoTokenError(f"PKCS#11 library '{name}' is not configured (PKCS11_LIBRARIES has: "
                                   f"{', '.join(configured) or 'nothing'}).")
        if not Path(path).is_file():
            raise CryptoTokenError(f"PKCS#11 library '{name}': file not found: {path}.")
        ref_type = str(properties.get("reference_type") or SLOT_LABEL).strip().upper()
        if ref_type not in dict(REFERENCE_TYPES):
            raise CryptoTokenError(f"Unknown PKCS#11 reference type '{ref_type}' (use SLOT_ID, SLOT_INDEX or "
                                   "SLOT_LABEL).")
        reference = str(properties.get("reference", "")).strip()
        if not reference:
            raise CryptoTokenError("A PKCS#11 reference (slot id, slot index or token label) is required.")
        # ASCII digits only: isdigit() alone passes "¹", which int() then refuses (this layer sits below pki.ids).
        if ref_type != SLOT_LABEL and not (reference.isascii() and reference.isdigit()):
            raise CryptoTokenError(f"PKCS#11 reference '{reference}' is not a slot number ({ref_type}).")
        attribute_file = str(properties.get("attribute_file") or "").strip()
        if attribute_file and attribute_file not in settings.PKCS11_ATTRIBUTE_FILES:
            raise CryptoTokenError(f"PKCS#11 attribute file '{attribute_file}' is not configured "
                                   "(PKCS11_ATTRIBUTE_FILES).")
        return cls(name, path, ref_type, reference, attribute_file)

    def as_properties(self) -> dict[str, str]:
        """The normalized properties to store (names, never paths)."""
        props = {"library": self.library_name, "reference_type": self.reference_type, "reference": self.reference}
        if self.attribute_file:
            props["attribute_file"] = self.attribute_file
        return props

    def describe(self) -> str:
        kind = {SLOT_ID: "slot id", SLOT_INDEX: "slot index", SLOT_LABEL: "token label"}[self.reference_type]
        return f"{kind} '{self.reference}' of PKCS#11 library '{self.library_name}'"

    def key_templates(self) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
        """The (private, public) extra attributes of the attribute file, or two empty templates."""
        if not self.attribute_file:
            return {}, {}
        return read_attribute_file(self.attribute_file, settings.PKCS11_ATTRIBUTE_FILES[self.attribute_file])


def read_attribute_file(name: str, path: str) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
    """Parse an attribute file (format in the package docstring) into (private, public) templates."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CryptoTokenError(f"PKCS#11 attribute file '{name}' cannot be read: {exc.strerror} ({path}).") from None
    private: dict[Attribute, Any] = {}
    public: dict[Attribute, Any] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        target = private
        scope, dot, attr_name = key.partition(".")
        if dot:
            if scope.lower() not in {"private", "public"}:
                raise CryptoTokenError(f"PKCS#11 attribute file '{name}', line {number}: '{scope}' is neither "
                                       "'private' nor 'public'.")
            target = public if scope.lower() == "public" else private
            key = attr_name.strip()
        attr = getattr(Attribute, key.upper().removeprefix("CKA_"), None) if key.upper().startswith("CKA_") else None
        if not sep or attr is None or attr not in ATTRIBUTE_TYPES:
            raise CryptoTokenError(f"PKCS#11 attribute file '{name}', line {number}: cannot read '{raw.strip()}' "
                                   "(expected CKA_NAME=value with an attribute python-pkcs11 knows).")
        if attr in _RESERVED:
            raise CryptoTokenError(f"PKCS#11 attribute file '{name}', line {number}: CKA_{attr.name} is set by the "
                                   "crypto token itself.")
        target[attr] = _attribute_value(name, number, attr, value)
    return private, public


def _attribute_value(name: str, number: int, attr: Attribute, value: str) -> Any:
    """Read ``value`` as the type python-pkcs11 packs ``attr`` with."""
    handler = ATTRIBUTE_TYPES[attr]
    try:
        if handler is handle_bool:
            if value.lower() not in {"true", "false"}:
                raise ValueError("expected true or false")
            return value.lower() == "true"
        if handler is handle_str:
            return value
        if handler is handle_bytes:
            return bytes.fromhex(value.removeprefix("0x"))
        if handler is handle_date:
            return datetime.date.fromisoformat(value)
        return int(value, 0)  # CK_ULONG and enumerations
    except ValueError as exc:
        raise CryptoTokenError(f"PKCS#11 attribute file '{name}', line {number}: bad value '{value}' for "
                               f"CKA_{attr.name} ({exc}).") from None
