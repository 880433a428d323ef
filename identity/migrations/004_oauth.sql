-- OpenID Connect provider: pairwise subjects, authorisation grants, mini-app refresh tokens.

-- Which citizen a pairwise ``sub`` stands for, per sector (the client's unit), so that
-- other contexts can resolve a mini-app's ``sub`` back to the account.
CREATE TABLE pairwise_subjects (
    sector        text NOT NULL,
    pairwise_sub  text NOT NULL,
    account_id    text NOT NULL REFERENCES accounts(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sector, pairwise_sub),
    UNIQUE (sector, account_id)
);

-- One row per authorisation (one code): what was granted to which client for whom.
-- Every token issued from the code hangs off it, so reusing a code, revoking a
-- refresh token or withdrawing consent revokes them all (RFC 6749 4.1.2).
CREATE TABLE oauth_grants (
    id            text PRIMARY KEY,
    client_id     text NOT NULL REFERENCES oauth_clients(client_id),
    account_id    text NOT NULL REFERENCES accounts(id),
    kind          text NOT NULL CHECK (kind IN ('web', 'miniapp')),
    scopes        text[] NOT NULL,
    acr           smallint NOT NULL,
    auth_time     timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    exchanged_at  timestamptz,
    revoked_at    timestamptz,
    revoked_reason text
);
CREATE INDEX oauth_grants_account_client ON oauth_grants (account_id, client_id)
    WHERE revoked_at IS NULL;

-- Mini-app refresh tokens: opaque, stored hashed, rotated on every use; a used
-- token keeps its row so a replay is detected and revokes the grant.
CREATE TABLE oauth_refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    grant_id    text NOT NULL REFERENCES oauth_grants(id),
    client_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
