-- Real-name verification binds name, ID number and its blind index together: all or none.
-- (accounts.id_number_index UNIQUE, from 001, binds one ID number to one account.)
ALTER TABLE accounts ADD CONSTRAINT accounts_real_name_complete CHECK (
    (id_number_index IS NULL) = (id_number_enc IS NULL)
    AND (id_number_index IS NULL) = (name_enc IS NULL)
    AND (id_number_index IS NULL) = (real_name_at IS NULL)
);
-- Face verification (L3) compares with the registry photo of the bound ID number.
ALTER TABLE accounts ADD CONSTRAINT accounts_face_needs_real_name CHECK (
    face_at IS NULL OR id_number_index IS NOT NULL
);
