"""Exchange's cross-field rules for send connectors (reference section 1).

``validate`` raises ``ValidationError`` on the first broken rule, with one line an
administrator can act on (naming the CLI options as well as the properties).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailhop.errors import ValidationError

if TYPE_CHECKING:
    from mailhop.model.connector import SendConnector


def validate(c: SendConnector) -> None:
    """Exchange's cross-field rules; raises ValidationError on the first broken one."""
    if c.smart_hosts and c.dns_routing_enabled:
        raise ValidationError(
            "SmartHosts (--smart-hosts) can only be set when DNSRoutingEnabled is false "
            "(--dns-routing-enabled false)"
        )
    if not c.dns_routing_enabled and not c.smart_hosts:
        raise ValidationError(
            "DNSRoutingEnabled false (--dns-routing-enabled false) requires SmartHosts (--smart-hosts)"
        )
    if any(not s.is_smtp for s in c.address_spaces) and c.dns_routing_enabled:
        raise ValidationError(
            "AddressSpaces: a non-SMTP address space requires SmartHosts and DNSRoutingEnabled false"
        )
    if c.require_tls and c.ignore_starttls:
        raise ValidationError("IgnoreSTARTTLS must be false when RequireTLS is true")
    if c.tls_auth_level and not c.require_tls:
        raise ValidationError(
            "The TlsAuthLevel parameter (--tls-auth-level) can only be set when RequireTLS is true "
            "(--require-tls true)"
        )
    if c.tls_auth_level and c.ignore_starttls:
        raise ValidationError("The TlsAuthLevel parameter cannot be set when IgnoreSTARTTLS is true")
    if c.tls_domain and c.tls_auth_level != "DomainValidation":
        raise ValidationError(
            "The TLSDomain parameter (--tls-domain) can only be set if the TLSAuthLevel parameter "
            "is set to DomainValidation"
        )
    if c.tls_auth_level == "DomainValidation" and c.smart_hosts and not c.tls_domain:
        raise ValidationError(
            "TlsDomain (--tls-domain) is required when TlsAuthLevel is DomainValidation on a "
            "smart-host connector"
        )
    if c.smart_host_auth_mechanism != "None" and c.dns_routing_enabled:
        raise ValidationError(
            "SmartHostAuthMechanism can only be set on a smart-host connector "
            "(--dns-routing-enabled false --smart-hosts ...)"
        )
    if c.smart_host_auth_mechanism in ("BasicAuth", "BasicAuthRequireTLS") and not c.authentication_credential:
        raise ValidationError(
            f"SmartHostAuthMechanism {c.smart_host_auth_mechanism} requires AuthenticationCredential "
            "(--authentication-credential USER --password-file FILE)"
        )
    if c.smart_host_auth_mechanism == "XOAUTH2" and not (c.authentication_credential and c.authentication_token_file):
        raise ValidationError(
            "SmartHostAuthMechanism XOAUTH2 requires AuthenticationCredential and AuthenticationTokenFile "
            "(--authentication-credential USER --authentication-token-file FILE)"
        )
    if c.authentication_token_file and c.smart_host_auth_mechanism != "XOAUTH2":
        raise ValidationError("AuthenticationTokenFile is used only with SmartHostAuthMechanism XOAUTH2")
    if c.tls_wrapper and c.ignore_starttls:
        raise ValidationError("TlsWrapper and IgnoreSTARTTLS cannot both be true")
    if not c.dns_routing_enabled and (c.smtp_dane_mode != "None" or c.mta_sts_mode != "None"):
        raise ValidationError(
            "SmtpDaneMode (--smtp-dane-mode) and MtaStsMode (--mta-sts-mode) apply to DNS-routing connectors "
            "only; a smart-host connector uses RequireTLS and TlsAuthLevel"
        )
    if c.ignore_starttls and (c.smtp_dane_mode != "None" or c.mta_sts_mode != "None"):
        raise ValidationError("IgnoreSTARTTLS cannot be true when SmtpDaneMode or MtaStsMode is not None")
    if not c.source_transport_servers:
        raise ValidationError("SourceTransportServers: at least one transport server is required")
