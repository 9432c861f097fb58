"""Fakes for the replaceable boundaries, shipped with the package so tests of any tier use them.

Each fake passes the same contract suite as the real implementation (tests/contract):
``VirtualClock`` for ``mailhop.clock.Clock``; the in-memory store, resolver and SMTP
next hop beside it.  Nothing here is used by the server itself.
"""
