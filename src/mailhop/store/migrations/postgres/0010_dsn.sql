-- mailhop store, version 10: DSN (RFC 3461). A message's MAIL parameters (RET, ENVID) and each
-- recipient's RCPT parameters (NOTIFY, ORCPT), as the text passed on to next hops that offer DSN.
ALTER TABLE messages ADD COLUMN dsn TEXT;
ALTER TABLE recipients ADD COLUMN dsn TEXT;
