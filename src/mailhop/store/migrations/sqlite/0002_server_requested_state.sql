-- mailhop store, version 2: an administrator's wish for a server's state (Draining).

ALTER TABLE servers ADD COLUMN requested_state TEXT;
