-- Issue 18: a request_id is an idempotency key for what was asked, not only for the id. The
-- digest (sha256 of the request id and the request's canonical JSON) tells a redelivery of the
-- same request (answered with its first verdict) from another request reusing the id
-- (rejected, its verdict stored under `<request_id>~<digest prefix>`). NULL on older rows.
ALTER TABLE registrations ADD COLUMN request_digest text;
