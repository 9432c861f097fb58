"""Readiness of a sending domain: what Gmail, Yahoo and Microsoft look at before they take its mail.

Each check returns ``Row`` values (Pass, Warn or Fail, the evidence, a one-line fix):
``spf`` (pyspf over the configured nameservers), ``dmarc`` (record, organisational
domain, DKIM alignment) and ``checks`` (DKIM publication, reverse DNS of the sending
addresses, MTA-STS and TLS-RPT records).  ``services.readiness`` runs them together.
A DNS failure that may heal is a Warn ("could not check"), never an exception.
"""

from __future__ import annotations

from mailhop.readiness.rows import FAIL, PASS, WARN, Row, overall

__all__ = ["FAIL", "PASS", "WARN", "Row", "overall"]
