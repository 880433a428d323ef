-- A client that authenticates with a registered public key (private_key_jwt) rolls it
-- over like a secret: the previous key keeps working until previous_jwk_valid_until.
ALTER TABLE oauth_clients
    ADD COLUMN previous_public_jwk jsonb,
    ADD COLUMN previous_jwk_valid_until timestamptz;
