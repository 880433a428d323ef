-- Citizens and staff accounts. Personal data encrypted (AES-256-GCM), looked up by blind index.
CREATE TABLE accounts (
    id               text PRIMARY KEY,
    phone_enc        bytea NOT NULL,
    phone_index      bytea NOT NULL UNIQUE,
    assurance_level  smallint NOT NULL DEFAULT 1 CHECK (assurance_level BETWEEN 1 AND 3),
    name_enc         bytea,
    id_number_enc    bytea,
    id_number_index  bytea UNIQUE,
    birth_date       date,
    region_code      text,
    real_name_at     timestamptz,
    face_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signing_keys (
    kid            text PRIMARY KEY,
    alg            text NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),
    private_enc    bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- A new key is published before it signs, so every worker knows it first.
    activates_at   timestamptz NOT NULL DEFAULT now(),
    retired_at     timestamptz,
    publish_until  timestamptz
);

CREATE TABLE sessions (
    id            text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES accounts(id),
    device        text NOT NULL DEFAULT '',
    ip            text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_account ON sessions (account_id) WHERE revoked_at IS NULL;

-- Opaque refresh tokens, stored hashed; a used token keeps its row so reuse is detected.
CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    session_id   text NOT NULL REFERENCES sessions(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    used_at      timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE units (
    id             text PRIMARY KEY,
    code           text NOT NULL UNIQUE,
    name_zh        text NOT NULL,
    name_en        text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('direct', 'municipal', 'district', 'soe')),
    district_code  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE role_grants (
    account_id  text NOT NULL REFERENCES accounts(id),
    role        text NOT NULL CHECK (role IN ('platform-admin', 'reviewer', 'unit-admin',
                                             'developer', 'counter-staff', 'issuer', 'finance')),
    unit_id     text NOT NULL DEFAULT '' ,
    granted_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, role, unit_id),
    CHECK ((role IN ('platform-admin', 'reviewer')) = (unit_id = ''))
);

-- Append-only security audit log.
CREATE TABLE security_events (
    id          bigserial PRIMARY KEY,
    account_id  text,
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    ip          text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_events_account ON security_events (account_id, id DESC);
CREATE FUNCTION security_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'security_events is append-only';
END $$;
CREATE TRIGGER security_events_no_change BEFORE UPDATE OR DELETE ON security_events
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();

-- The SMS outbox adapter (development default): messages kept instead of sent.
CREATE TABLE sms_outbox (
    id           bigserial PRIMARY KEY,
    phone_index  bytea NOT NULL,
    phone_enc    bytea NOT NULL,
    body_enc     bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_outbox_phone ON sms_outbox (phone_index, id);
