"""Processes: the long-running entry points (workers, scheduler, exporter, feed, demo)
and what runs inside them."""
