"""The AWS calls of a sync, and nothing else: the floor orgsync's cost is measured against.

No broker, no database, no events: one process walks the organization exactly as discovery
does (the same `pipelines.discovery.walk`, the same pages), and hands every account it would
import to `--processes` processes of `--threads` threads each, which make the calls
validation and harvesting make (AssumeRole into the member role for an active account,
ListTagsForResource for every imported one) with one client per role per process, as
orgsync's workers do. Prints one JSON document: wall time, CPU seconds and peak RSS of every
process, counted from the moment its work starts (imports excluded, as for the workers).

    python benchmarks/bare_loop.py --endpoint-url URL --org-role-arn ARN --member-role-name N
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from orgsync.pipelines import discovery, harvest
from orgsync.pipelines.request_rules import Filters

CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=64)
SESSION = {"RoleSessionName": "bare-loop", "DurationSeconds": 3600}


def usage(started_cpu: float) -> dict[str, float]:
    return {
        "cpu_s": time.process_time() - started_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def org_clients(endpoint_url: str, org_role_arn: str) -> tuple[Any, Any]:
    """(the service's STS client, the organization role's Organizations client)."""
    sts = boto3.session.Session().client("sts", endpoint_url=endpoint_url, config=CONFIG)
    issued = sts.assume_role(RoleArn=org_role_arn, **SESSION)["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
    )
    return sts, session.client("organizations", endpoint_url=endpoint_url, config=CONFIG)


def account_worker(args: argparse.Namespace, work: Any, results: Any) -> None:
    started = time.process_time()
    sts, orgs = org_clients(args.endpoint_url, args.org_role_arn)
    done = [0]

    def loop() -> None:
        while (item := work.get()) is not None:
            account_id, active = item
            if active:
                # a denied member role is an outcome, not a failure
                with contextlib.suppress(ClientError):
                    sts.assume_role(
                        RoleArn=f"arn:aws:iam::{account_id}:role/{args.member_role_name}",
                        RoleSessionName="bare-loop-member",
                        DurationSeconds=900,
                    )
            harvest.fetch_tags(orgs, account_id)
            done[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"pid": os.getpid(), "accounts": done[0], **usage(started)})


def run(args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    work = context.Queue(maxsize=10_000)
    results = context.Queue()
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    workers = [
        context.Process(target=account_worker, args=(args, work, results))
        for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    _, orgs = org_clients(args.endpoint_url, args.org_role_arn)
    filters = Filters(exclude_prefixes=tuple(args.exclude_prefix))
    accounts = 0
    for batch in discovery.walk(orgs, ()):
        for account in batch:
            verdict = discovery.judge(account, filters)
            if verdict.action != "exclude":
                work.put((account.account_id, verdict.action == "import"))
                accounts += 1
    walked_s = time.perf_counter() - started_wall
    for _ in range(args.processes * args.threads):
        work.put(None)
    per_process = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    walker = {"pid": os.getpid(), "accounts": 0, **usage(started_cpu)}
    processes = [walker, *per_process]
    return {
        "accounts": accounts,
        "wall_s": time.perf_counter() - started_wall,
        "walk_s": walked_s,
        "cpu_s": sum(p["cpu_s"] for p in processes),
        "processes": processes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--org-role-arn", required=True)
    parser.add_argument("--member-role-name", required=True)
    parser.add_argument("--exclude-prefix", action="append", default=[])
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
