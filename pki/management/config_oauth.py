"""``python manage.py config oauth add|list|edit|remove``: trusted OAuth providers from the command line.

The client secret comes from ``--client-secret-env VAR`` (the name of an environment variable) or a
prompt, never from the command line itself, where other users of the host could read it.
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

from django.core.management.base import CommandError

from ..models.oauth import SUPPORTED_ALGORITHMS, OAuthProviderType, UserClaim
from ..services import oauth as oauth_services
from ..services.oauth import SKIP_AUDIENCE_WARNING
from .config_groups import VerbConfigGroup, cli_actor

_TEXT_OPTIONS = {  # option -> field
    "--label": "label", "--issuer": "issuer", "--discovery-url": "discovery_url",
    "--authorization-endpoint": "authorization_endpoint", "--token-endpoint": "token_endpoint",
    "--userinfo-endpoint": "userinfo_endpoint", "--jwks-uri": "jwks_uri",
    "--end-session-endpoint": "end_session_endpoint", "--client-id": "client_id", "--realm": "realm",
    "--audience": "audience", "--scopes": "scopes",
}


def _add_provider_options(p: argparse.ArgumentParser, editing: bool) -> None:
    p.add_argument("--type", dest="provider_type", choices=OAuthProviderType.values)
    for option, dest in _TEXT_OPTIONS.items():
        p.add_argument(option, dest=dest, required=(not editing and dest in ("label", "issuer")))
    p.add_argument("--user-claim", dest="user_claim", choices=UserClaim.values)
    p.add_argument("--algorithms", dest="allowed_algorithms",
                   help=f"Comma-separated, some of {','.join(SUPPORTED_ALGORITHMS)}")
    p.add_argument("--clock-skew", dest="clock_skew", type=int, help="Seconds (default 60)")
    p.add_argument("--max-token-lifetime", dest="max_token_lifetime", type=int,
                   help="Seconds a token may be valid for at most (default 86400; 0: no limit)")
    p.add_argument("--skip-audience-check", dest="skip_audience_check", action="store_const", const=True,
                   help="Accept tokens without our audience (see the warning)")
    if editing:
        p.add_argument("--check-audience", dest="skip_audience_check", action="store_const", const=False)
        p.add_argument("--clear-client-secret", action="store_true")
    p.add_argument("--client-secret-env", metavar="VAR", help="Read the client secret from this environment variable")
    p.add_argument("--client-secret-prompt", action="store_true", help="Ask for the client secret")


def _values(options: dict[str, Any]) -> dict[str, Any]:
    fields = ["provider_type", "user_claim", "allowed_algorithms", "clock_skew", "max_token_lifetime",
              "skip_audience_check",
              *_TEXT_OPTIONS.values()]
    return {f: options[f] for f in fields if options.get(f) is not None}


def _secret(options: dict[str, Any]) -> str | None:
    if options.get("clear_client_secret"):
        return ""
    if options.get("client_secret_env"):
        name = options["client_secret_env"]
        if name not in os.environ:
            raise CommandError(f"Environment variable {name} is not set")
        return os.environ[name]
    if options.get("client_secret_prompt"):
        return getpass.getpass("Client secret: ")
    return None


class OAuthConfigGroup(VerbConfigGroup):
    help = "Trusted OAuth providers (OAuth/OpenID Connect login and bearer tokens)."
    verbs = {
        "add": "Add a trusted OAuth provider (blank endpoints are read from its discovery document).",
        "list": "List the trusted OAuth providers.",
        "edit": "Change a provider (only the options given).",
        "remove": "Remove a provider.",
    }

    def add_add(self, p):
        _add_provider_options(p, editing=False)

    def handle_add(self, options, stdout):
        row = oauth_services.save_provider(cli_actor(), _values(options), client_secret=_secret(options))
        stdout.write(f"Added trusted OAuth provider '{row.label}' (id {row.pk}, issuer {row.issuer})")
        if row.skip_audience_check:
            stdout.write(f"WARNING: {SKIP_AUDIENCE_WARNING}")

    def handle_list(self, options, stdout):
        for row in oauth_services.list_providers(cli_actor()):
            audience = "audience check SKIPPED" if row.skip_audience_check else f"audience {row.audience}"
            secret = "secret set" if row.has_client_secret else "no secret"
            stdout.write(f"{row.pk}\t{row.label}\t{row.provider_type}\t{row.issuer}\t{audience}\t"
                         f"claim {row.user_claim}\tclient {row.client_id or '-'} ({secret})")

    def add_edit(self, p):
        p.add_argument("provider", help="Label or id")
        _add_provider_options(p, editing=True)

    def handle_edit(self, options, stdout):
        actor = cli_actor()
        row = oauth_services.get_provider(actor, options["provider"])
        row = oauth_services.save_provider(actor, _values(options), row, client_secret=_secret(options))
        stdout.write(f"Saved trusted OAuth provider '{row.label}'")
        if row.skip_audience_check:
            stdout.write(f"WARNING: {SKIP_AUDIENCE_WARNING}")

    def add_remove(self, p):
        p.add_argument("provider", help="Label or id")

    def handle_remove(self, options, stdout):
        actor = cli_actor()
        row = oauth_services.get_provider(actor, options["provider"])
        removed = oauth_services.delete_provider(actor, row)
        stdout.write(f"Removed trusted OAuth provider '{row.label}'"
                     + (f" and its {removed} role member(s)" if removed else ""))
