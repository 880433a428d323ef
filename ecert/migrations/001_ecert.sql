-- Electronic certificates: types, issuer keys, certificates, status lists, matters and the use log.

CREATE TABLE ecert_types (
    code          text PRIMARY KEY,
    name_zh       text NOT NULL,
    name_en       text NOT NULL,
    -- Unit codes allowed to issue this type.
    issuer_units  text[] NOT NULL DEFAULT '{}',
    -- {"fields": [{"key", "label_zh", "label_en", "required", "mask", "qr"}],
    --  "name_field", "id_field", "validity": {"max_days", "requires_until"}}
    schema        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Each issuing unit's ES256 keys; the newest non-retired key signs, every key stays published.
CREATE TABLE ecert_issuer_keys (
    kid          text PRIMARY KEY,
    unit_id      text NOT NULL REFERENCES units(id),
    private_enc  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    retired_at   timestamptz
);
CREATE INDEX ecert_issuer_keys_unit ON ecert_issuer_keys (unit_id, created_at DESC);

-- Token Status Lists (bits = 2); indexes are handed out in order.
CREATE TABLE ecert_status_lists (
    id          serial PRIMARY KEY,
    size        integer NOT NULL CHECK (size > 0),
    next_idx    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (next_idx <= size)
);

CREATE TABLE ecert_certificates (
    id              text PRIMARY KEY,
    type_code       text NOT NULL REFERENCES ecert_types(code),
    issuer_unit_id  text NOT NULL REFERENCES units(id),
    holder_id       text NOT NULL REFERENCES accounts(id),
    doc_number      text NOT NULL,
    -- HMAC of the issuance request: same document number + same body = same certificate.
    request_mac     bytea NOT NULL,
    claims_enc      bytea NOT NULL,
    -- The issuer's compact JWS over the claims (encrypted: it carries them in clear).
    credential_enc  bytea NOT NULL,
    issuer_kid      text NOT NULL REFERENCES ecert_issuer_keys(kid),
    status          text NOT NULL DEFAULT 'valid'
                    CHECK (status IN ('valid', 'revoked', 'suspended')),
    status_reason   text,
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz,
    status_list_id  integer NOT NULL REFERENCES ecert_status_lists(id),
    status_idx      integer NOT NULL,
    issued_by       text,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer_unit_id, doc_number),
    UNIQUE (status_list_id, status_idx)
);
CREATE INDEX ecert_certificates_holder ON ecert_certificates (holder_id, issued_at DESC);
CREATE INDEX ecert_certificates_type ON ecert_certificates (type_code, holder_id);

-- Matters (purposes) a counter may verify for, and the fields each may see (duty-based lookup).
CREATE TABLE ecert_matters (
    code        text PRIMARY KEY,
    name_zh     text NOT NULL,
    name_en     text NOT NULL,
    fields      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every verification and every read by a service, visible to the holder.
CREATE TABLE ecert_uses (
    id              text PRIMARY KEY,
    certificate_id  text NOT NULL REFERENCES ecert_certificates(id),
    holder_id       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('verification', 'service-read')),
    unit_id         text,
    client_id       text,
    matter_code     text,
    result          text NOT NULL,
    fields          text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ecert_uses_certificate ON ecert_uses (certificate_id, created_at DESC);
