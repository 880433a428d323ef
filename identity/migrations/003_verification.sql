-- Real-name verification binds the name, the ID number and its blind index together:
-- all or none. (accounts.id_number_index UNIQUE, from 001, binds one ID number to one
-- account.) assurance_level, real_name_at and face_at stay unconstrained so that tests
-- of other contexts may set a level directly.
ALTER TABLE accounts ADD CONSTRAINT accounts_real_name_complete CHECK (
    (id_number_index IS NULL) = (id_number_enc IS NULL)
    AND (id_number_index IS NULL) = (name_enc IS NULL)
);
