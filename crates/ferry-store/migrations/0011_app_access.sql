-- What the connection's Dropbox app can reach: 'full_dropbox' or 'app_folder' (NULL: not
-- known, for tokens pasted without saying, and connections saved before Ferry kept it).
ALTER TABLE connections ADD COLUMN app_access TEXT;
