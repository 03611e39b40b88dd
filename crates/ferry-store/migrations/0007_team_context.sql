-- Team connections: the member a team token acts as (Dropbox-API-Select-User) and where
-- paths start (Dropbox-API-Path-Root: `root:<namespace>` for the team space,
-- `namespace:<id>` for one namespace; NULL for the member's home).
ALTER TABLE connections ADD COLUMN select_user TEXT;
ALTER TABLE connections ADD COLUMN path_root TEXT;
