"""mailhop: an outbound mail transport with Exchange-style send connectors."""

__version__ = "0.1.0"
