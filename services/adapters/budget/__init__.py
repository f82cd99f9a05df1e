"""One AWS rate budget per (organization, API), shared by every worker process and machine.

AWS Organizations throttles by request rate, counts every caller of an organization together,
and publishes no figures. Each process retrying on its own only adds throttling, so every call
first takes a token from a bucket kept in PostgreSQL: when none is left, the call is promised
the next free slot and sleeps until then, instead of being sent to be throttled.

- `arithmetic.py`: the bucket and its adapting rate (AIMD, slow start), pure;
- `store.py`: `Budget`, the bucket's row in PostgreSQL and each process's lease of its tokens;
- `hooks.py`: `Budget.attach`'s botocore handlers, which wait for a token before each call and
  turn a throttled answer into a lower rate and a wait.
"""

from orgsync.services.adapters.budget.hooks import current_lane, lane
from orgsync.services.adapters.budget.store import SERVICE_SCOPE, Budget

__all__ = ["SERVICE_SCOPE", "Budget", "current_lane", "lane"]
