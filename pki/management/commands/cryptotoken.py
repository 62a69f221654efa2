"""``python manage.py cryptotoken <subcommand>``: crypto token operations with ``ejbca.sh cryptotoken``'s arguments.

    cryptotoken create --token MyToken --pin foo123 --autoactivate true --type SoftCryptoToken
    cryptotoken create --token Hsm --pin 1234 --autoactivate true --type PKCS11CryptoToken \\
        --lib SoftHSM2 --slotlabeltype SLOT_LABEL --slotlabel mytoken
    cryptotoken activate --token MyToken --pin foo123 · deactivate --token MyToken · delete --token MyToken
    cryptotoken generatekey --token MyToken --alias signKey --keyspec 2048        (or secp256r1, RSA4096, ...)
    cryptotoken removekey|testkey --token MyToken --alias signKey · listkeys --token MyToken · list

This project's earlier forms stay: ``--name``/``--authcode``, ``activate NAME``, ``generatekey NAME ALIAS SPEC``.
Backend options come from each backend's declared parameters (``--library``, ``--region``, ...), so a new backend
shows up here without changes to this command. ``--pin`` is accepted on the command line as ejbca.sh takes it, but
$PKI_TOKEN_AUTHCODE or the prompt keep it out of the process list; it is never printed.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError

from cryptotokens import services
from cryptotokens.backends import registry
from cryptotokens.models import CryptoToken
from pki.management.base import GroupCommand, read_secret, true_false, unsupported

# ejbca.sh's type names (class names, with or without the package) for this project's backends.
EJBCA_TYPES = {"softcryptotoken": "SoftCryptoToken", "pkcs11cryptotoken": "PKCS11CryptoToken",
               "pkcs11ngcryptotoken": "Pkcs11NgCryptoToken", "azurecryptotoken": "AzureCryptoToken",
               "awskmscryptotoken": "AWSKMSCryptoToken"}
# ejbca.sh's PKCS#11 options and their values, for this project's declared parameters.
EJBCA_SLOT_TYPES = {"SLOT_NUMBER": "SLOT_ID", "SLOT_INDEX": "SLOT_INDEX", "SLOT_LABEL": "SLOT_LABEL"}


def _parameters():
    seen: dict[str, object] = {}
    for backend in registry:
        for param in backend.parameters:
            seen.setdefault(param.name, param)
    return seen.values()


def _token_type(value: str) -> str:
    names = {n.lower(): n for n, _ in registry.choices()}
    key = value.strip().rsplit(".", 1)[-1].lower()
    if key in names:
        return names[key]
    if key in EJBCA_TYPES and EJBCA_TYPES[key].lower() in names:
        return names[EJBCA_TYPES[key].lower()]
    raise unsupported(f"crypto token type '{value}'", f"Types here: {', '.join(n for n, _ in registry.choices())}.")


def _token_args(p, *, positional: bool = True) -> None:
    if positional:
        p.add_argument("name_pos", nargs="?", metavar="TOKEN")
    p.add_argument("--token", "--name", dest="name", help="Crypto token name")


class Command(GroupCommand):
    help = "Crypto token operations (ejbca.sh cryptotoken subcommands)."
    subcommands = {
        "create": "Create a crypto token.",
        "list": "List crypto tokens (or, given one, its key pairs).",
        "listkeys": "List the key pairs of a token, as its device holds them.",
        "activate": "Activate a token with its authentication code.",
        "deactivate": "Deactivate a token.",
        "generatekey": "Generate a key pair on a token.",
        "removekey": "Remove a key pair from a token.",
        "testkey": "Sign and verify a random challenge with a key pair.",
        "delete": "Delete a token (refused while a CA uses it).",
    }

    def _code(self, given: str | None) -> str:
        """The authentication code from --pin, $PKI_TOKEN_AUTHCODE, or a prompt on a terminal."""
        if given:
            self.stderr.write("Warning: --pin puts the code on the command line, where other users of this host can "
                              "read it; set PKI_TOKEN_AUTHCODE or answer the prompt instead.")
        return read_secret(given, env="PKI_TOKEN_AUTHCODE", prompt="Authentication code: ",
                           missing="Give the authentication code with --pin or PKI_TOKEN_AUTHCODE")

    def _token(self, o: dict) -> CryptoToken:
        name = o.get("name") or o.get("name_pos")
        if not name:
            raise CommandError("--token is required")
        token = CryptoToken.objects.filter(name=name).first()
        if token is None:
            raise CommandError(f"Crypto token '{name}' does not exist")
        return token

    def _alias(self, o: dict) -> str:
        alias = o.get("alias") or o.get("alias_pos")
        if not alias:
            raise CommandError("--alias is required")
        return alias

    # --- create --------------------------------------------------------------------------------------------------

    def add_create(self, p):
        _token_args(p, positional=False)
        p.add_argument("--type", default="SoftCryptoToken",
                       help=f"{', '.join(n for n, _ in registry.choices())} (ejbca.sh's class names too)")
        p.add_argument("--pin", "--authcode", dest="pin",
                       help="Authentication code (PIN, keystore password or cloud secret)")
        p.add_argument("--autoactivate", nargs="?", const=True, default=False, type=true_false,
                       help="true: store the code encrypted and stay active")
        p.add_argument("--allowexport", "--exportkey", dest="allowexport", nargs="?", const=True, default=False,
                       type=true_false, help="Allow export of private keys (soft tokens)")
        p.add_argument("--explicitecc", nargs="?", const=True, default=False, type=true_false,
                       help="Use explicit ECC parameters (ICAO)")
        p.add_argument("--lib", help="PKCS#11: the library (a name of PKCS11_LIBRARIES, or its path)")
        p.add_argument("--slotlabeltype", help="PKCS#11: SLOT_NUMBER, SLOT_INDEX or SLOT_LABEL")
        p.add_argument("--slotlabel", help="PKCS#11: the slot number, index or token label")
        for param in _parameters():
            if not param.secret:
                p.add_argument(f"--{param.name.replace('_', '-')}", dest=f"param_{param.name}", help=param.label)

    def handle_create(self, name=None, type="SoftCryptoToken", pin=None, autoactivate=False, allowexport=False,
                      explicitecc=False, lib=None, slotlabeltype=None, slotlabel=None, **options):
        if not name:
            raise CommandError("--token is required")
        token_type = _token_type(type)
        backend = registry.get(token_type)
        self._ejbca_pkcs11_options(options, lib, slotlabeltype, slotlabel)
        properties = {}
        for param in backend.parameters:
            value = options.get(f"param_{param.name}")
            if value in (None, "") and param.required and not param.secret and param.default in (None, ""):
                raise CommandError(f"--{param.name.replace('_', '-')} is required for {token_type}")
            if value not in (None, ""):
                properties[param.name] = value
        token = services.create_token(
            self.actor, name=name, token_type=token_type, auth_code=self._code(pin), auto_activate=autoactivate,
            allow_export=allowexport, explicit_ecc_parameters=explicitecc, properties=properties,
        )
        self.stdout.write(f"Created crypto token '{token.name}' (id {token.pk}, {token.token_id})")

    @staticmethod
    def _ejbca_pkcs11_options(options: dict, lib: str | None, slotlabeltype: str | None, slotlabel: str | None):
        if lib:
            libraries = getattr(settings, "PKCS11_LIBRARIES", {})
            by_path = {str(path): name for name, path in libraries.items()}
            if lib not in libraries and lib not in by_path:
                raise CommandError(f"--lib '{lib}' is not a PKCS#11 library configured in PKCS11_LIBRARIES "
                                   f"({', '.join(libraries) or 'none'})")
            options["param_library"] = by_path.get(lib, lib)
        if slotlabeltype:
            kind = EJBCA_SLOT_TYPES.get(slotlabeltype.upper())
            if kind is None:
                raise CommandError("--slotlabeltype must be SLOT_NUMBER, SLOT_INDEX or SLOT_LABEL")
            options["param_reference_type"] = kind
        if slotlabel:
            options["param_reference"] = slotlabel

    # --- listing -------------------------------------------------------------------------------------------------

    def add_list(self, p):
        _token_args(p)

    def handle_list(self, **o):
        if o.get("name") or o.get("name_pos"):
            return self.handle_listkeys(**o)
        for token in CryptoToken.objects.order_by("pk"):
            state = "active" if token.is_active else "offline"
            auto = ", auto-activated" if token.auto_activate else ""
            self.stdout.write(f"{token.pk}\t{token.name}\t{token.token_type}\t{state}{auto}\t"
                              f"{token.key_pairs.count()} key pair(s)")

    def add_listkeys(self, p):
        _token_args(p)

    def handle_listkeys(self, **o):
        token = self._token(o)
        device_listing = getattr(services, "list_device_keys", None)
        if device_listing is not None:  # what the device holds, registered or not
            for key in device_listing(self.actor, token):
                note = "" if key.known else "\t(not registered)"
                self.stdout.write(f"{key.alias}\t{key.key_algorithm}\t{key.key_spec}\t{key.subject_key_id or '-'}"
                                  f"{note}{chr(9) + key.problem if key.problem else ''}")
            return
        self.actor.require(f"/cryptotoken/view/{token.pk}")
        for kp in token.key_pairs.order_by("alias"):
            self.stdout.write(f"{kp.alias}\t{kp.key_algorithm}\t{kp.key_spec}\t{kp.subject_key_id}")

    # --- activation ----------------------------------------------------------------------------------------------

    def add_activate(self, p):
        _token_args(p)
        p.add_argument("--pin", "--authcode", dest="pin")

    def handle_activate(self, pin=None, **o):
        token = self._token(o)
        services.activate(self.actor, token, self._code(pin))
        self.stdout.write(f"Crypto token '{token.name}' is active")

    def add_deactivate(self, p):
        _token_args(p)

    def handle_deactivate(self, **o):
        token = self._token(o)
        services.deactivate(self.actor, token)
        note = " (auto-activated: it stays usable)" if token.auto_activate else ""
        self.stdout.write(f"Crypto token '{token.name}' is deactivated{note}")

    def add_delete(self, p):
        _token_args(p)

    def handle_delete(self, **o):
        token = self._token(o)
        services.delete_token(self.actor, token)
        self.stdout.write(f"Deleted crypto token '{token.name}'")

    # --- keys ----------------------------------------------------------------------------------------------------

    def add_generatekey(self, p):
        _token_args(p)
        p.add_argument("alias_pos", nargs="?", metavar="ALIAS")
        p.add_argument("keyspec_pos", nargs="?", metavar="KEYSPEC")
        p.add_argument("--alias")
        p.add_argument("--keyspec", help="2048, 4096, RSA3072, secp256r1, P-384, brainpoolP256r1, Ed25519, Ed448")

    def handle_generatekey(self, keyspec=None, keyspec_pos=None, **o):
        token, alias = self._token(o), self._alias(o)
        spec = keyspec or keyspec_pos
        if not spec:
            raise CommandError("--keyspec is required")
        entry = services.generate_key_pair(self.actor, token, alias, spec)
        self.stdout.write(f"Generated {entry.key_algorithm} {entry.key_spec} key pair '{alias}' (SKI "
                          f"{entry.subject_key_id})")

    def _add_key_args(self, p):
        _token_args(p)
        p.add_argument("alias_pos", nargs="?", metavar="ALIAS")
        p.add_argument("--alias")

    add_removekey = add_testkey = _add_key_args

    def handle_removekey(self, **o):
        token, alias = self._token(o), self._alias(o)
        services.remove_key_pair(self.actor, token, alias)
        self.stdout.write(f"Removed key pair '{alias}'")

    def handle_testkey(self, **o):
        token, alias = self._token(o), self._alias(o)
        services.test_key_pair(self.actor, token, alias)
        self.stdout.write(f"Key pair '{alias}' tested OK")
