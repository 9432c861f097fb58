-- mailhop store, version 5: bodies larger than one part (1 MiB) keep their later parts here.
-- Part 0 stays in ``bodies``, so a small message is still one row; a large one is written
-- and read a part at a time and never has to fit in memory.
CREATE TABLE body_parts (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    part       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (message_id, part)
);
