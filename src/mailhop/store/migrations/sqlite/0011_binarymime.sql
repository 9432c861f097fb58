-- mailhop store, version 11: a message received with BODY=BINARYMIME (RFC 3030) in BDAT chunks,
-- which may only leave to next hops that offer BINARYMIME and CHUNKING.
ALTER TABLE messages ADD COLUMN binary_mime INTEGER NOT NULL DEFAULT 0;
