-- OAuth 2 / OpenID Connect clients: one per mini-app (or a unit's server).
CREATE TABLE oauth_clients (
    client_id            text PRIMARY KEY,
    name                 text NOT NULL,
    unit_id              text NOT NULL REFERENCES units(id),
    app_id               text,
    client_type          text NOT NULL CHECK (client_type IN ('confidential', 'public')),
    secret_hash          bytea,
    previous_secret_hash bytea,
    previous_valid_until timestamptz,
    public_jwk           jsonb,
    redirect_uris        text[] NOT NULL DEFAULT '{}',
    allowed_scopes       text[] NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    disabled_at          timestamptz
);
CREATE INDEX oauth_clients_unit ON oauth_clients (unit_id);

-- What a citizen agreed that a client may see; time-bounded and revocable.
CREATE TABLE consents (
    account_id  text NOT NULL REFERENCES accounts(id),
    client_id   text NOT NULL REFERENCES oauth_clients(client_id),
    scopes      text[] NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    PRIMARY KEY (account_id, client_id)
);
