-- An attempt's organization is its contact's (the claim copies it from the
-- contact row), and deleting an organization already deletes its attempts
-- through their contacts. The separate check against organizations cost one
-- lookup per attempt written, on the dialer's hottest path, and added
-- nothing, so it goes.
ALTER TABLE attempts DROP CONSTRAINT attempts_organization_id_fkey;
