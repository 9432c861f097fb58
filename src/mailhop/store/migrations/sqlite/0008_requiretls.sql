-- mailhop store, version 8: a message's TLS demands (RFC 8689). ``require_tls``: it came with
-- MAIL FROM ... REQUIRETLS and leaves only over validated TLS to next hops that offer
-- REQUIRETLS; ``tls_optional``: it carries "TLS-Required: No", so DANE and MTA-STS failures
-- do not hold it back.
ALTER TABLE messages ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN tls_optional INTEGER NOT NULL DEFAULT 0;
