"""``mailhop dkim``: New-, Get-, Set-, Rotate- and Remove-DkimSigningConfig.

Changes (and ``show``, which records what DNS says) go through the running server
when there is one (``services.control``).  Nothing here ever has a private key: the
service returns public records only.
"""

from __future__ import annotations

from typing import Any

import click

from mailhop.cli.main import Context, pass_ctx
from mailhop.cli.output import emit, format_list, table

LIST_COLUMNS = ("Domain", "Enabled", "Status", "ActiveSelector", "PendingSelector")
BOOL = click.Choice(["true", "false", "$true", "$false"], case_sensitive=False)


def _human(config: dict[str, Any]) -> str:
    shown = {k: v for k, v in config.items() if k != "Records"}
    lines = [format_list(shown), "", "Publish these TXT records (one record per name; the value may be split "
             "into strings of 255 characters):"]
    for r in config["Records"]:
        lines.append(f"  [{r['Role']}] {r['Name']}  TXT  \"{r['Value']}\"")
    if config.get("PendingSelector"):
        lines.append(f"Signing moves to {config['PendingSelector']} once its records are seen in DNS "
                     "(mailhop dkim show checks now; or rotate --force).")
    if config.get("InactiveSelectorRemovableAfter"):
        inactive = [r["Name"] for r in config["Records"] if r["Role"] == "Inactive"]
        lines.append(f"The records of the inactive selector ({', '.join(inactive)}) may be removed after "
                     f"{config['InactiveSelectorRemovableAfter']}: no queued message signed with it is left then. "
                     "The next rotation replaces them.")
    return "\n".join(lines)


@click.group()
def dkim() -> None:
    """DKIM signing configs, one per sending domain (Exchange Online's *-DkimSigningConfig)."""


@dkim.command("new")
@click.argument("domain")
@click.option("--algorithms", metavar="LIST", help="rsa-sha256,ed25519-sha256 (default: both, dual signatures).")
@click.option("--key-size", type=int, metavar="BITS", help="RSA key size, 1024 to 4096 (default 2048).")
@click.option("--enabled", type=BOOL, default="true", show_default=True, help="Sign with it.")
@click.option("--sub-domains", type=BOOL, default="false", show_default=True,
              help="Also sign mail whose From: is in a sub-domain.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def new(ctx: Context, domain: str, algorithms: str | None, key_size: int | None, enabled: str, sub_domains: str,
        as_json: bool) -> None:
    """New-DkimSigningConfig: make the keys of selector1 and print the records to publish."""
    made = ctx.change("dkim.new", lambda s: s.dkim.new(domain, algorithms, key_size, enabled, sub_domains),
                      domain=domain, algorithms=algorithms, key_size=key_size, enabled=enabled,
                      sub_domains=sub_domains)
    emit(made, as_json, _human(made))


@dkim.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Get-DkimSigningConfig: every domain (the status of the last look at DNS)."""
    rows = ctx.read(lambda s: s.dkim.list())
    emit(rows, as_json, table(rows, LIST_COLUMNS))


@dkim.command("show")
@click.argument("domain")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, domain: str, as_json: bool) -> None:
    """One domain, looked up in DNS now: whether the published records match the keys."""
    config = ctx.change("dkim.show", lambda s: s.dkim.show(domain), domain=domain)
    emit(config, as_json, _human(config))


@dkim.command("set")
@click.argument("domain")
@click.option("--enabled", type=BOOL)
@click.option("--sub-domains", type=BOOL)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def set_(ctx: Context, domain: str, enabled: str | None, sub_domains: str | None, as_json: bool) -> None:
    """Set-DkimSigningConfig."""
    config = ctx.change("dkim.set", lambda s: s.dkim.set(domain, enabled, sub_domains), domain=domain,
                        enabled=enabled, sub_domains=sub_domains)
    emit(config, as_json, f"DKIM signing config '{config['Domain']}' changed: Enabled {config['Enabled']}, "
                          f"SubDomains {config['SubDomains']}.")


@dkim.command("rotate")
@click.argument("domain")
@click.option("--key-size", type=int, metavar="BITS", help="RSA key size of the new keys.")
@click.option("--force", is_flag=True, help="Sign with the new keys at once, before DNS shows them.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def rotate(ctx: Context, domain: str, key_size: int | None, force: bool, as_json: bool) -> None:
    """Rotate-DkimSigningConfig: new keys on the inactive selector."""
    config = ctx.change("dkim.rotate", lambda s: s.dkim.rotate(domain, key_size, force), domain=domain,
                        key_size=key_size, force=force)
    emit(config, as_json, _human(config))


@dkim.command("remove")
@click.argument("domain")
@pass_ctx
def remove(ctx: Context, domain: str) -> None:
    """Remove-DkimSigningConfig: mail from the domain is no longer signed."""
    name = ctx.change("dkim.remove", lambda s: s.dkim.remove(domain), domain=domain)
    click.echo(f"DKIM signing config '{name}' removed.")
