"""Registry of the ``python manage.py config <group> <verb> ...`` command groups.

EJBCA's CLI has one ``config`` command whose groups belong to different features (``config oauth``,
``config scep``, ...). Here each Django app contributes its group from ``AppConfig.ready()``, so the
``config`` command itself never imports a higher app (apps depend downward only).

A group is any object with:

``help: str``
    One line shown by ``manage.py config --help``.
``add_arguments(parser)``
    Receives the argparse parser of ``config <group>`` and adds its verbs, normally as sub-subparsers
    with ``dest="verb"``: ``verbs = parser.add_subparsers(dest="verb", required=True)``.
``handle(options: dict, stdout) -> None``
    Runs the chosen verb. ``options`` holds every parsed option (``options["verb"]``, ...);
    ``stdout`` is the command's output stream (``stdout.write("...")``). Refusals raise
    ``django.core.management.base.CommandError`` (exit code 1 and the message). Domain errors
    (``pki.errors.PkiError``) raised from services are turned into ``CommandError`` by the dispatcher.

Registering, in the app's ``apps.py``::

    def ready(self):
        from pki.management.config_groups import register_config_group
        from .cli import ScepConfigGroup
        register_config_group("scep", ScepConfigGroup())

Most groups are a handful of verbs; :class:`VerbConfigGroup` gives them the ``add_<verb>`` /
``handle_<verb>`` shape of the other command groups::

    class ScepConfigGroup(VerbConfigGroup):
        help = "SCEP aliases."
        verbs = {"listalias": "List the SCEP aliases.", "addalias": "Add an alias."}

        def add_addalias(self, p):
            p.add_argument("--alias", required=True)

        def handle_addalias(self, options, stdout):
            services.add_alias(cli_actor(), options["alias"])
            stdout.write(f"Added alias {options['alias']}")

Commands run locally with the server's rights: use :func:`cli_actor` as the actor of service calls.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol, runtime_checkable

from django.core.exceptions import ImproperlyConfigured

from ..auth.access import Actor


@runtime_checkable
class ConfigGroup(Protocol):
    """What ``register_config_group`` accepts (see the module docstring)."""

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def handle(self, options: dict[str, Any], stdout) -> None: ...


_groups: dict[str, ConfigGroup] = {}


def register_config_group(name: str, group: ConfigGroup) -> None:
    """Make ``manage.py config <name> ...`` run ``group``.

    Registering the same name again with an object of the same class replaces it (``ready()`` may run
    more than once in tests); a different class under a taken name is a configuration error.
    """
    if not isinstance(group, ConfigGroup):
        raise ImproperlyConfigured(f"config group {name!r} needs help, add_arguments() and handle()")
    existing = _groups.get(name)
    if existing is not None and type(existing) is not type(group):
        raise ImproperlyConfigured(f"config group {name!r} is already registered by {type(existing).__name__}")
    _groups[name] = group


def config_groups() -> dict[str, ConfigGroup]:
    """The registered groups by name, sorted (a copy)."""
    return dict(sorted(_groups.items()))


def cli_actor() -> Actor:
    """The actor of a local command: the server's own rights, named ``cli`` in the audit log."""
    return Actor.system_actor("cli")


class VerbConfigGroup:
    """A group whose verbs are ``add_<verb>(parser)`` / ``handle_<verb>(options, stdout)`` methods."""

    help: str = ""
    verbs: dict[str, str] = {}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True, metavar="verb", parser_class=type(parser))
        for verb, help_text in self.verbs.items():
            kwargs = {}
            if hasattr(parser, "called_from_command_line"):
                kwargs["called_from_command_line"] = parser.called_from_command_line
            p = sub.add_parser(verb, help=help_text, description=help_text, **kwargs)
            adder = getattr(self, f"add_{verb}", None)
            if adder is not None:
                adder(p)

    def handle(self, options: dict[str, Any], stdout) -> None:
        getattr(self, f"handle_{options['verb']}")(options, stdout)
