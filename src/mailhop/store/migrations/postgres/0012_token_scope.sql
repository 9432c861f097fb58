-- mailhop store, version 12: what a token may do. 'full' (everything), 'read' (read only, as
-- read_only = 1 said) or 'submit' (POST /api/messages and nothing else).
ALTER TABLE admin_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
UPDATE admin_tokens SET scope = 'read' WHERE read_only = 1;
