-- The catalog reads the apps in gray on every search (few at any time): keep that read off a
-- scan of the whole registry.
CREATE INDEX miniapps_in_gray ON miniapps (app_id)
    WHERE status = 'released' AND (percent < 100 OR cohort IS NOT NULL);
