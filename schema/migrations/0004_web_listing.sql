-- The web console's cloud listing (services/web/listing.py): a page is chosen by a filter and
-- a sort, then LIMIT/OFFSET. A badge filter (the Organizations page links to
-- `badge=system.cloud_organization=<id>`) finds its accounts through (key, value) rather than
-- reading every badge; the default sort by name walks an index instead of sorting the table.
CREATE INDEX badges_key_value ON badges (key, value);
CREATE INDEX accounts_name ON accounts (name, account_id);
