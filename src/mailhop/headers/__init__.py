"""Message headers: reading the header block, and (later) the header analyzer."""
