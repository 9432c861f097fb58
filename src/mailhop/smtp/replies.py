"""The replies mailhop's SMTP server says (Exchange's texts where Exchange has one).

``Reply`` itself lives in ``mailhop.outcome``, below every layer; this module holds
only what the receive side answers on the wire.
"""

from __future__ import annotations

from mailhop.outcome import Reply

RELAY_DENIED = Reply(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service not available, closing transmission channel")
QUEUE_WRITE_FAILED = Reply(451, "4.3.0", "Temporary failure, message not queued; try again later")
INSUFFICIENT_RESOURCES = Reply(452, "4.3.1", "Insufficient system resources")
HEADER_TOO_BIG = Reply(552, "5.3.4", "Header size exceeds fixed maximum size")
