"""Framework-free codecs of the e-certificate QR presentation.

Base45 (RFC 9285), COSE_Sign1 (RFC 9052) CBOR Web Tokens (RFC 8392), the IETF
Token Status List (draft-ietf-oauth-status-list), QR rendering and issuer keys.
No database, no HTTP: services and routes wire these in.
"""
