"""DKIM signing: streaming canonicalization, keys, signatures, and the keyring the server signs with."""
