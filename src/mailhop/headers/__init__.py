"""Message headers: reading the header block (block), Received lines (received), and the header analyzer (analyzer)."""
