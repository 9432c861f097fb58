"""Connector selection by Exchange's rules, plus sender-based routing."""

from mailhop.routing.router import Router, recipient_domain

__all__ = ["Router", "recipient_domain"]
