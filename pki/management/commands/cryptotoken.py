"""``python manage.py cryptotoken <subcommand>``: crypto token operations (EJBCA's CLI verbs).

Backend options (``--library``, ``--region``, ...) come from each backend's declared parameters, so a
new backend shows up here without changes to this command.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from cryptotokens import services
from cryptotokens.backends import registry
from cryptotokens.models import CryptoToken
from pki.management.base import GroupCommand, read_secret


def _parameters():
    seen: dict[str, object] = {}
    for backend in registry:
        for param in backend.parameters:
            seen.setdefault(param.name, param)
    return seen.values()


class Command(GroupCommand):
    help = "Crypto token operations."
    subcommands = {
        "create": "Create a crypto token.",
        "list": "List crypto tokens, or the key pairs of one.",
        "activate": "Activate a token with its authentication code.",
        "deactivate": "Deactivate a token.",
        "generatekey": "Generate a key pair on a token.",
        "removekey": "Remove a key pair from a token.",
        "testkey": "Sign and verify a random challenge with a key pair.",
        "delete": "Delete a token (refused while a CA uses it).",
    }

    def _code(self, given: str | None) -> str:
        """The authentication code from --authcode, $PKI_TOKEN_AUTHCODE, or a prompt on a terminal."""
        return read_secret(given, env="PKI_TOKEN_AUTHCODE", prompt="Authentication code: ",
                           missing="Give the authentication code with --authcode or PKI_TOKEN_AUTHCODE")

    def _token(self, name: str) -> CryptoToken:
        token = CryptoToken.objects.filter(name=name).first()
        if token is None:
            raise CommandError(f"Crypto token '{name}' does not exist")
        return token

    def add_create(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--type", default="SoftCryptoToken", choices=[n for n, _ in registry.choices()])
        p.add_argument("--authcode", help="Authentication code (PIN, keystore password or cloud secret)")
        p.add_argument("--autoactivate", action="store_true", help="Store the code encrypted and stay active")
        p.add_argument("--allowexport", action="store_true", help="Allow export of private keys (soft tokens)")
        p.add_argument("--explicitecc", action="store_true", help="Use explicit ECC parameters (ICAO)")
        for param in _parameters():
            if not param.secret:
                p.add_argument(f"--{param.name.replace('_', '-')}", dest=f"param_{param.name}", help=param.label)

    def handle_create(self, name, type, authcode=None, autoactivate=False, allowexport=False, explicitecc=False,
                      **options):
        backend = registry.get(type)
        properties = {}
        for param in backend.parameters:
            value = options.get(f"param_{param.name}")
            if value in (None, "") and param.required and not param.secret:
                raise CommandError(f"--{param.name.replace('_', '-')} is required for {type}")
            if value not in (None, ""):
                properties[param.name] = value
        token = services.create_token(
            self.actor, name=name, token_type=type, auth_code=self._code(authcode), auto_activate=autoactivate,
            allow_export=allowexport, explicit_ecc_parameters=explicitecc, properties=properties,
        )
        self.stdout.write(f"Created crypto token '{token.name}' (id {token.pk}, {token.token_id})")

    def add_list(self, p):
        p.add_argument("name", nargs="?", help="List this token's key pairs")

    def handle_list(self, name=None, **o):
        if name:
            token = self._token(name)
            for kp in token.key_pairs.all():
                self.stdout.write(f"{kp.alias}\t{kp.key_algorithm}\t{kp.key_spec}\t{kp.subject_key_id}")
            return
        for token in CryptoToken.objects.all():
            state = "active" if token.is_active else "offline"
            auto = ", auto-activated" if token.auto_activate else ""
            self.stdout.write(f"{token.pk}\t{token.name}\t{token.token_type}\t{state}{auto}\t"
                              f"{token.key_pairs.count()} key pair(s)")

    def add_activate(self, p):
        p.add_argument("name")
        p.add_argument("--authcode")

    def handle_activate(self, name, authcode=None, **o):
        services.activate(self.actor, self._token(name), self._code(authcode))
        self.stdout.write(f"Crypto token '{name}' is active")

    def add_deactivate(self, p):
        p.add_argument("name")

    def handle_deactivate(self, name, **o):
        token = self._token(name)
        services.deactivate(self.actor, token)
        note = " (auto-activated: it stays usable)" if token.auto_activate else ""
        self.stdout.write(f"Crypto token '{name}' is deactivated{note}")

    def add_generatekey(self, p):
        p.add_argument("name")
        p.add_argument("alias")
        p.add_argument("keyspec", help="RSA2048..RSA8192, P-256, P-384, P-521, brainpoolP256r1, Ed25519, Ed448")

    def handle_generatekey(self, name, alias, keyspec, **o):
        entry = services.generate_key_pair(self.actor, self._token(name), alias, keyspec)
        self.stdout.write(f"Generated {entry.key_algorithm} {entry.key_spec} key pair '{alias}' (SKI "
                          f"{entry.subject_key_id})")

    def add_removekey(self, p):
        p.add_argument("name")
        p.add_argument("alias")

    def handle_removekey(self, name, alias, **o):
        services.remove_key_pair(self.actor, self._token(name), alias)
        self.stdout.write(f"Removed key pair '{alias}'")

    def add_testkey(self, p):
        p.add_argument("name")
        p.add_argument("alias")

    def handle_testkey(self, name, alias, **o):
        services.test_key_pair(self.actor, self._token(name), alias)
        self.stdout.write(f"Key pair '{alias}' tested OK")

    def add_delete(self, p):
        p.add_argument("name")

    def handle_delete(self, name, **o):
        services.delete_token(self.actor, self._token(name))
        self.stdout.write(f"Deleted crypto token '{name}'")
