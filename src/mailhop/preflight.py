"""``mailhop serve --check``: the configuration, every listener and the files, without starting.

Like ``postfix check`` and ``nginx -t``: each receive connector's and the admin API's
address must be free to listen on and their certificates loadable, every ``[[certificates]]``
entry loadable, the key that seals stored secrets readable (or makable), and the data
directory private.  Errors would stop ``mailhop serve``; warnings would not.  ``serve``
runs the same errors check before it starts (and before it forks its workers).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhop.config import CertificateSettings, Settings
from mailhop.errors import ConfigError
from mailhop.listeners import admin_tls_context, bind, server_tls_context
from mailhop.private import problems
from mailhop.sealing import Sealer


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _try(report: Report, fn: Callable[[], object]) -> None:
    try:
        fn()
    except ConfigError as exc:
        report.errors.append(str(exc))


def _certificate(cert: CertificateSettings) -> None:
    try:
        ssl.create_default_context().load_cert_chain(str(cert.cert_file), str(cert.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"certificate '{cert.name}' cannot be loaded: {exc}") from None


def _bindable(what: str, address: str) -> None:
    bind(what, address).close()


def _key(sealer: Sealer) -> None:
    sealer.open(sealer.seal("check"))


def check(settings: Settings, listeners: bool = True) -> Report:
    """What would stop ``serve`` (errors) or should be fixed (warnings); ``listeners=False`` skips
    the test binds (a server of this configuration is running)."""
    report = Report()
    s = settings
    for rc in s.receive_connectors:
        _try(report, functools.partial(server_tls_context, rc))
        if listeners:
            _try(report, functools.partial(_bindable, f"receive connector '{rc.name}'", rc.bind))
    if s.admin.enabled:
        _try(report, functools.partial(admin_tls_context, s.admin))
        if listeners:
            _try(report, functools.partial(_bindable, "the admin API", s.admin.bind))
    for cert in s.certificates:
        _try(report, functools.partial(_certificate, cert))
    key = s.server.secret_key_path
    if key.exists():
        _try(report, functools.partial(_key, Sealer(key)))
    else:
        report.warnings.append(f"{key} does not exist yet: it is made when the first password is stored")
    report.warnings += [f"permissions: {p}" for p in problems(s.data_dir)]
    return report
