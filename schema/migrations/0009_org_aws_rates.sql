-- An organization's own floor and ceiling for its Organizations calls, over ORGSYNC_AWS_RATES
-- (the registration field `aws_rates`): {"<API or *>": {"floor": <calls/s>, "ceiling": <calls/s>}}.
-- NULL: no override, the setting applies. The rate budget (services/budget.py) reads it with the
-- budget row, so a change reaches every worker at its next call.
ALTER TABLE organizations ADD COLUMN aws_rates jsonb;
