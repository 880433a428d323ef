-- Mini-apps: the registry (one row per app, the catalog's search document),
-- versions with their own manifest and upstream, release history (rollback),
-- uses, ratings with follow-ups (好差评), and usage per app and hour.
CREATE TABLE miniapps (
    app_id          text PRIMARY KEY,
    unit_id         text NOT NULL REFERENCES units(id),
    client_id       text REFERENCES oauth_clients(client_id),
    status          text NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'released', 'suspended', 'offline')),
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    description     text NOT NULL DEFAULT '',
    icon            text NOT NULL DEFAULT '',
    category        text NOT NULL,
    category_zh     text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('service', 'life')),
    districts       text[] NOT NULL DEFAULT '{}',
    unit_name       text NOT NULL,
    name_pinyin     text NOT NULL DEFAULT '',
    name_initials   text NOT NULL DEFAULT '',
    search_vector   tsvector NOT NULL DEFAULT ''::tsvector,
    -- The release in force: version, gray percentage and cohort; previous = full release before.
    current_version text,
    percent         double precision NOT NULL DEFAULT 100,
    cohort          jsonb,
    previous_version text,
    use_count       bigint NOT NULL DEFAULT 0,
    rating_sum      double precision NOT NULL DEFAULT 0,
    rating_count    integer NOT NULL DEFAULT 0,
    -- The query-independent part of miniapps.search.rank_score (prior 4.0, weight 20, 1e6 uses).
    static_score    double precision GENERATED ALWAYS AS (
        0.25 * least(1.0, ln(1 + use_count) / ln(1 + 1000000))
      + 0.15 * ((4.0 * 20 + rating_sum) / (20 + rating_count) - 1) / 4
    ) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX miniapps_unit ON miniapps (unit_id);
CREATE INDEX miniapps_search_gin ON miniapps USING gin (search_vector) WHERE status = 'released';
CREATE INDEX miniapps_static_score ON miniapps (static_score DESC, app_id) WHERE status = 'released';

CREATE TABLE miniapp_versions (
    app_id        text NOT NULL REFERENCES miniapps(app_id),
    version       text NOT NULL,
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'in_review', 'approved', 'rejected', 'released')),
    manifest      jsonb NOT NULL,
    upstream_url  text NOT NULL,
    review_reason text,
    reviewed_by   text,
    reviewed_at   timestamptz,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, version)
);

CREATE TABLE miniapp_releases (
    id          bigserial PRIMARY KEY,
    app_id      text NOT NULL REFERENCES miniapps(app_id),
    version     text NOT NULL,
    percent     double precision NOT NULL,
    cohort      jsonb,
    action      text NOT NULL CHECK (action IN ('release', 'rollback', 'suspend', 'resume', 'offline')),
    actor       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX miniapp_releases_app ON miniapp_releases (app_id, id DESC);

-- One use = one citizen session that reached the app through the gateway.
CREATE TABLE miniapp_uses (
    app_id      text NOT NULL REFERENCES miniapps(app_id),
    account_id  text NOT NULL,
    session_id  text NOT NULL,
    first_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, account_id, session_id)
);

CREATE TABLE miniapp_ratings (
    rating_id    text PRIMARY KEY,
    app_id       text NOT NULL REFERENCES miniapps(app_id),
    unit_id      text NOT NULL,
    account_id   text NOT NULL,
    session_id   text NOT NULL,
    score        smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment      text NOT NULL DEFAULT '',
    rerate_score smallint CHECK (rerate_score BETWEEN 1 AND 5),
    rerated_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, account_id, session_id)
);
CREATE INDEX miniapp_ratings_unit ON miniapp_ratings (unit_id);

CREATE TABLE miniapp_followups (
    followup_id  text PRIMARY KEY,
    rating_id    text NOT NULL UNIQUE REFERENCES miniapp_ratings(rating_id),
    app_id       text NOT NULL,
    unit_id      text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'contacted', 'fixed')),
    contact_due  timestamptz NOT NULL,
    fix_due      timestamptz NOT NULL,
    contacted_at timestamptz,
    fixed_at     timestamptz,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX miniapp_followups_unit ON miniapp_followups (unit_id, status);

-- Gateway usage per app and hour, added to by every worker's periodic flush.
CREATE TABLE miniapp_usage (
    app_id      text NOT NULL,
    hour        timestamptz NOT NULL,
    requests    bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    latency_ms_sum double precision NOT NULL DEFAULT 0,
    -- Counts of requests at or under 5, 10, 25, 50, 100, 250, 500, 1000, 2500 ms and above.
    latency_buckets bigint[] NOT NULL DEFAULT '{0,0,0,0,0,0,0,0,0,0}',
    PRIMARY KEY (app_id, hour)
);
