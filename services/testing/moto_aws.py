"""A simulated AWS (moto's server) that can throttle, fail, deny and slow down on purpose.

moto never throttles and its AssumeRole always succeeds, so the fault harness, the demo and
the end-to-end tests wrap moto's WSGI app in a middleware that injects AWS-shaped errors.
Throttling is by rate, as AWS does it: with `rates` set, each (API, calling account) has a
token bucket of its own (rate and burst per API, `*` for the rest), and a call that finds it
empty is answered `TooManyRequestsException` (Organizations, JSON) or `Throttling` (STS, IAM,
XML), HTTP 400. AWS publishes no rates for Organizations: `MODEST_RATES` is a guess at a
modest organization's, not a figure of AWS's.
One calling account can be singled out, as AWS singles out a management account: its own
`account_rates` replace `rates` for its calls, and its `slowdown` factor stretches each answer
it gets (moto's time and the latency) that many times. The calling account is the one moto acts
in: the `x-moto-account-id` header, else the account that issued the request's access key (a
session from AssumeRole into arn:aws:iam::<account>:role/... calls as <account>).
The fault state is driven in-process through `SimulatedAws.faults`, or from other processes
(workers, test drivers) through the `/_sim/` control plane served on the same port.
"""

from __future__ import annotations

import argparse
import http
import io
import json
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast
from xml.sax.saxutils import escape

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The caller named in denial messages when the request does not pin an account.
DEFAULT_CALLER_ACCOUNT = "123456789012"
_COUNTED_SETTINGS = ("throttle_assume_role", "throttle", "fail_operations", "fail_assume_role")
# calls/s and burst per API of one calling account; `*` is every API not named
MODEST_RATES: dict[str, tuple[float, float]] = {"*": (10.0, 20.0), "AssumeRole": (50.0, 100.0)}


@dataclass(frozen=True)
class Fault:
    status: int
    code: str
    message: str
    sender: bool = True


def _throttled() -> Fault:
    return Fault(400, "Throttling", "Rate exceeded")


# Query-protocol codes (sts, iam) and what JSON-protocol services (organizations) say instead.
_JSON_CODES = {"Throttling": "TooManyRequestsException"}
_JSON_MESSAGES = {
    "Throttling": "You have sent too many requests in too short a period of time. The quota "
    "helps protect against denial-of-service attacks. Try again later."
}


@dataclass(frozen=True)
class AwsCall:
    operation: str | None
    target_account: str | None = None  # set only for AssumeRole
    role_arn: str = ""
    caller_account: str = DEFAULT_CALLER_ACCOUNT


_ACCESS_KEY = re.compile(r"Credential=([A-Za-z0-9]+)/")


def identify_call(
    environ: dict[str, Any], account_of_key: Callable[[str], str] | None = None
) -> AwsCall:
    """Name the AWS operation of a request, and its calling account, without consuming its
    body. `account_of_key` names the account that issued an access key (moto's own lookup)."""
    caller = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or _key_account(environ, account_of_key)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return AwsCall(target.rsplit(".", 1)[-1], caller_account=caller)
    params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
        params.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
    operation = params.get("Action", [None])[0]
    if operation != "AssumeRole":
        return AwsCall(operation, caller_account=caller)
    role_arn = params.get("RoleArn", [""])[0]
    arn_fields = role_arn.split(":")
    account = arn_fields[4] if len(arn_fields) > 4 else ""
    return AwsCall(operation, account, role_arn, caller)


def _key_account(environ: dict[str, Any], account_of_key: Callable[[str], str] | None) -> str:
    key = _ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    if key is None or account_of_key is None:
        return DEFAULT_CALLER_ACCOUNT
    return account_of_key(key[1])


class FaultState:
    """Which faults to inject next, plus call counters; every read and write holds the lock.

    Change settings through `update()`: editing a dict in place (`faults.throttle[op] = 2`)
    would race with request threads that are consuming it.
    """

    def __init__(self, random_seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._operations: Counter[str] = Counter()
        self._assume_role: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()
        self._callers: Counter[str] = Counter()
        self._throttled_callers: Counter[str] = Counter()
        self.reset(random_seed)

    def reset(self, random_seed: int = 0) -> None:
        with self._lock:
            self.latency_ms: float = 0.0
            self.deny_assume_role: set[str] = set()
            self.throttle_assume_role: dict[str, int] = {}
            self.throttle: dict[str, int] = {}
            self.throttle_ratio: float = 0.0
            self.fail_operations: dict[str, int] = {}
            self.fail_assume_role: dict[str, int] = {}
            self.rates: dict[str, tuple[float, float]] = {}
            # per calling account: rates replacing `rates`, and a factor on its answer times
            self.account_rates: dict[str, dict[str, tuple[float, float]]] = {}
            self.slowdown: dict[str, float] = {}
            self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
            self.random_seed = random_seed
            self._rng = random.Random(random_seed)

    def update(self, **settings: Any) -> None:
        """Replace the given settings; collections may arrive as JSON lists and objects."""
        parsed = {key: _parse_setting(key, value) for key, value in settings.items()}
        with self._lock:
            for key, value in parsed.items():
                setattr(self, key, value)
            if "random_seed" in parsed:
                self._rng = random.Random(parsed["random_seed"])
            if "rates" in parsed or "account_rates" in parsed:
                self._buckets = {}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "deny_assume_role": sorted(self.deny_assume_role),
                "throttle_assume_role": dict(self.throttle_assume_role),
                "throttle": dict(self.throttle),
                "throttle_ratio": self.throttle_ratio,
                "fail_operations": dict(self.fail_operations),
                "fail_assume_role": dict(self.fail_assume_role),
                "rates": {name: list(rate) for name, rate in self.rates.items()},
                "account_rates": {
                    account: {name: list(rate) for name, rate in rates.items()}
                    for account, rates in self.account_rates.items()
                },
                "slowdown": dict(self.slowdown),
                "random_seed": self.random_seed,
            }

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "operations": dict(self._operations),
                "assume_role": dict(self._assume_role),
                "throttled": dict(self._throttled),
            }

    def caller_counts(self) -> dict[str, dict[str, int]]:
        """Calls per calling account, and how many of them were throttled."""
        with self._lock:
            return {"calls": dict(self._callers), "throttled": dict(self._throttled_callers)}

    def reset_counts(self) -> None:
        with self._lock:
            self._operations.clear()
            self._assume_role.clear()
            self._throttled.clear()
            self._callers.clear()
            self._throttled_callers.clear()

    def slowdown_of(self, account: str) -> float:
        """How many times its normal time an answer to `account` takes (1: not slowed)."""
        with self._lock:
            return self.slowdown.get(account, 1.0)

    def decide(self, call: AwsCall) -> tuple[float, Fault | None]:
        """Count one AWS call and pick its fault, consuming one unit of any counted fault.

        Server errors and throttles come before the denial because AWS rejects on rate at its
        front door before it evaluates any policy.
        """
        operation, target_account = call.operation, call.target_account
        with self._lock:
            latency_s = self.latency_ms / 1000 * self.slowdown.get(call.caller_account, 1.0)
            if operation is None:
                return latency_s, None
            self._operations[operation] += 1
            self._callers[call.caller_account] += 1
            if target_account is not None:
                self._assume_role[target_account] += 1
            if _take(self.fail_operations, operation) or (
                target_account is not None and _take(self.fail_assume_role, target_account)
            ):
                return latency_s, Fault(
                    500, "InternalFailure", "We encountered an internal error.", sender=False
                )
            if (
                _take(self.throttle, operation)
                or (target_account is not None and _take(self.throttle_assume_role, target_account))
                or (self.throttle_ratio > 0 and self._rng.random() < self.throttle_ratio)
                or self._over_rate(operation, call.caller_account)
            ):
                self._throttled[operation] += 1
                self._throttled_callers[call.caller_account] += 1
                return latency_s, _throttled()
            if target_account is not None and target_account in self.deny_assume_role:
                return latency_s, _denial(call)
            return latency_s, None

    def _over_rate(self, operation: str, caller: str) -> bool:
        """Take a token from the bucket of (operation, caller); True when it had none."""
        rates = self.account_rates.get(caller, self.rates)
        rate, burst = rates.get(operation) or rates.get("*") or (0.0, 0.0)
        if rate <= 0:
            return False
        now = time.monotonic()
        tokens, at = self._buckets.get((operation, caller), (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1:
            self._buckets[(operation, caller)] = (tokens, now)
            return True
        self._buckets[(operation, caller)] = (tokens - 1, now)
        return False


def parse_rate(text: str) -> tuple[str, tuple[float, float]]:
    """`API=RATE[:BURST]` (calls/s; burst defaults to one second of calls) from a command line."""
    name, _, numbers = text.partition("=")
    rate, _, burst = numbers.partition(":")
    try:
        parsed = _parse_rates({name: [float(rate), float(burst or rate)]})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: expected API=RATE[:BURST]; {error}") from None
    return next(iter(parsed.items()))


def rates_from_args(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    return {**(MODEST_RATES if args.modest_rates else {}), **dict(args.rate or [])}


def add_rate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate",
        type=parse_rate,
        action="append",
        metavar="API=RATE[:BURST]",
        help="throttle API (or * for every other) beyond RATE calls/s per calling account",
    )
    parser.add_argument(
        "--modest-rates",
        action="store_true",
        help=f"throttle as a modest organization might (a guess: {MODEST_RATES})",
    )


def _parse_rates(value: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(value, dict):
        raise ValueError("rates must map API names (or *) to [rate, burst]")
    rates = {}
    for name, pair in value.items():
        if isinstance(pair, int | float):
            pair = [pair, pair]
        if (
            not isinstance(name, str)
            or not (name == "*" or name.isalnum())
            or not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(n, int | float) and n > 0 for n in pair)
            or pair[1] < 1
        ):
            raise ValueError(f"rates: {name!r}: expected [rate > 0, burst >= 1]")
        rates[name] = (float(pair[0]), float(pair[1]))
    return rates


def _take(budget: dict[str, int], key: str) -> bool:
    remaining = budget.get(key, 0)
    if remaining <= 0:
        return False
    if remaining == 1:
        del budget[key]
    else:
        budget[key] = remaining - 1
    return True


def _parse_setting(key: str, value: Any) -> Any:
    if key == "latency_ms":
        if not isinstance(value, int | float) or value < 0:
            raise ValueError("latency_ms must be a number >= 0")
        return float(value)
    if key == "throttle_ratio":
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError("throttle_ratio must be between 0 and 1")
        return float(value)
    if key == "random_seed":
        if not isinstance(value, int):
            raise ValueError("random_seed must be an integer")
        return value
    if key == "rates":
        return _parse_rates(value)
    if key == "account_rates":
        return {account: _parse_rates(rates) for account, rates in _by_account(key, value).items()}
    if key == "slowdown":
        factors = _by_account(key, value)
        if not all(isinstance(f, int | float) and 1 <= f <= 1000 for f in factors.values()):
            raise ValueError("slowdown must map account ids to factors between 1 and 1000")
        return {account: float(factor) for account, factor in factors.items()}
    if key == "deny_assume_role":
        if isinstance(value, str) or not isinstance(value, list | set | tuple | frozenset):
            raise ValueError("deny_assume_role must be a list of account ids")
        return {str(account) for account in value}
    if key in _COUNTED_SETTINGS:
        if not isinstance(value, dict) or not all(
            isinstance(n, int) and n >= 0 for n in value.values()
        ):
            raise ValueError(f"{key} must map names to counts >= 0")
        return {str(name): n for name, n in value.items() if n > 0}
    raise ValueError(f"unknown fault setting {key!r}")


def _by_account(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
        isinstance(account, str) and len(account) == 12 and account.isdigit() for account in value
    ):
        raise ValueError(f"{key} must map 12-digit account ids to settings")
    return value


def _error_body(environ: dict[str, Any], fault: Fault, request_id: str) -> tuple[str, bytes]:
    if environ.get("HTTP_X_AMZ_TARGET"):
        content_type = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"
        body = {
            "__type": _JSON_CODES.get(fault.code, fault.code),
            "message": _JSON_MESSAGES.get(fault.code, fault.message),
        }
        return content_type, json.dumps(body).encode()
    error_type = "Sender" if fault.sender else "Receiver"
    xml = (
        f"<ErrorResponse><Error><Type>{error_type}</Type><Code>{fault.code}</Code>"
        f"<Message>{escape(fault.message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    )
    return "text/xml", xml.encode()


def _denial(call: AwsCall) -> Fault:
    return Fault(
        403,
        "AccessDenied",
        f"User: arn:aws:iam::{call.caller_account}:user/moto is not authorized to perform: "
        f"sts:AssumeRole on resource: {call.role_arn}",
    )


class KeyAccounts:
    """The account that issued an access key, as moto itself finds it (its IAM backends; the
    default account for a key it never issued), remembered: moto scans every account's
    backend for each lookup, and a key stays with its account (its id encodes the account)."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def forget(self) -> None:
        self._known = {}

    def __call__(self, access_key: str) -> str:
        account = self._known.get(access_key)
        if account is None:
            from moto.iam.models import get_account_id_from

            account = get_account_id_from(access_key)
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            self._known[access_key] = account
        return account


class FaultInjector:
    """WSGI middleware: `/_sim/` is the control plane, `/moto-api/` passes straight through."""

    def __init__(self, app: WsgiApp, faults: FaultState, keys: KeyAccounts | None = None) -> None:
        self.app = app
        self.faults = faults
        self.keys = keys

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api/"):
            if self.keys is not None:
                self.keys.forget()  # moto's keys go with a reset; ours with them
            return self.app(environ, start_response)
        if path.startswith("/_sim/"):
            return self._control(environ, start_response, path)
        call = identify_call(environ, self.keys)
        latency_s, fault = self.faults.decide(call)
        if latency_s:
            time.sleep(latency_s)
        if fault is None:
            slowdown = self.faults.slowdown_of(call.caller_account)
            return self._answer(environ, start_response, slowdown)
        request_id = str(uuid.uuid4())  # not moto's seeded random: ids must stay reproducible
        content_type, body = _error_body(environ, fault, request_id)
        return _respond(start_response, fault.status, body, content_type, request_id)

    def _answer(
        self, environ: dict[str, Any], start_response: Callable[..., Any], slowdown: float
    ) -> Any:
        """moto's answer; a slowed caller's only after `slowdown` times moto's own time."""
        if slowdown <= 1:
            return self.app(environ, start_response)
        started = time.monotonic()
        body = list(self.app(environ, start_response))
        time.sleep((slowdown - 1) * (time.monotonic() - started))
        return body

    def _control(
        self, environ: dict[str, Any], start_response: Callable[..., Any], path: str
    ) -> Any:
        method = environ["REQUEST_METHOD"]
        try:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            result = fault_control(self.faults, method, path, body)
        except ValueError as exc:
            return _respond_json(start_response, 400, {"error": str(exc)})
        if result is None:
            return _respond_json(start_response, 404, {"error": f"no route {method} {path}"})
        return _respond_json(start_response, 200, result)


def fault_control(faults: FaultState, method: str, path: str, body: bytes) -> Any:
    """The `/_sim/` control plane over a fault state; None for a path it does not serve."""
    if (method, path) == ("GET", "/_sim/faults"):
        return faults.snapshot()
    if (method, path) == ("POST", "/_sim/faults"):
        settings = json.loads(body or b"{}")
        if not isinstance(settings, dict):
            raise ValueError("body must be a JSON object")
        faults.update(**settings)
        return faults.snapshot()
    if (method, path) == ("POST", "/_sim/reset-faults"):
        faults.reset()
        return faults.snapshot()
    if (method, path) == ("GET", "/_sim/counts"):
        return faults.counts()
    if (method, path) == ("GET", "/_sim/caller-counts"):
        return faults.caller_counts()
    if (method, path) == ("POST", "/_sim/reset-counts"):
        faults.reset_counts()
        return faults.counts()
    return None


def _respond(
    start_response: Callable[..., Any],
    status: int,
    body: bytes,
    content_type: str,
    request_id: str | None = None,
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if request_id:
        headers.append(("x-amzn-RequestId", request_id))
    start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
    return [body]


def _respond_json(start_response: Callable[..., Any], status: int, payload: Any) -> list[bytes]:
    return _respond(start_response, status, json.dumps(payload).encode(), "application/json")


def build_app(faults: FaultState) -> FaultInjector:
    # moto is imported here, not at module top, so processes that only use the control
    # client (workers, test drivers) do not need the `sim` extra installed.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    return FaultInjector(app, faults, KeyAccounts())


class ServedInThread:
    """A server (`self._server`, made by the subclass's `start`) run by a daemon thread of
    this process; `with` starts and stops it."""

    port: int
    endpoint_url: str
    _server: Any = None
    _thread: threading.Thread | None = None

    def start(self) -> str:
        raise NotImplementedError

    def serve_in_thread(self, name: str) -> str:
        self.port = self._server.server_port
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self._thread.start()
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SimulatedAws(ServedInThread):
    """moto behind the fault injector, served on 127.0.0.1 from a background thread.

    moto keeps its backends in module globals, so every instance in one process shares
    one simulated AWS; only the fault state and the counters are per instance.
    """

    def __init__(self, port: int = 0, faults: FaultState | None = None) -> None:
        self.port = port
        self.faults = faults or FaultState()
        self.endpoint_url = ""

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        class QuietRequestHandler(MotoRequestHandler):
            # One access-log line per request drowns test output at thousands of calls.
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server = make_server(
            "127.0.0.1",
            self.port,
            build_app(self.faults),
            threaded=True,
            request_handler=QuietRequestHandler,
        )
        # moto answers what it does not implement (SimulatePrincipalPolicy) with a 500 and a
        # logged traceback; the 500 is the point, the traceback only noise.
        self._server.log = lambda *args, **kwargs: None
        return self.serve_in_thread("simulated-aws")


class ControlPlaneError(RuntimeError):
    """The control plane refused a request; the message carries its explanation."""


class SimulatedAwsControl:
    """Drives a SimulatedAws from any process over HTTP (urllib only, no moto needed)."""

    def __init__(self, endpoint_url: str, timeout_s: float = 10.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.timeout_s = timeout_s

    def faults(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/_sim/faults"))

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        plain = {k: sorted(v) if isinstance(v, set | frozenset) else v for k, v in settings.items()}
        return cast(dict[str, Any], self._call("POST", "/_sim/faults", json.dumps(plain).encode()))

    def reset_faults(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", "/_sim/reset-faults"))

    def counts(self) -> dict[str, dict[str, int]]:
        return cast(dict[str, dict[str, int]], self._call("GET", "/_sim/counts"))

    def caller_counts(self) -> dict[str, dict[str, int]]:
        return cast(dict[str, dict[str, int]], self._call("GET", "/_sim/caller-counts"))

    def reset_counts(self) -> None:
        self._call("POST", "/_sim/reset-counts")

    def seed(self, n: int) -> None:
        """Make moto's generated ids (org, OU, account ids) the same on every run."""
        self._call("POST", f"/moto-api/seed?a={int(n)}", b"", parse=False)

    def reset(self) -> None:
        """Wipe every moto backend; fault settings and counters are left alone."""
        self._call("POST", "/moto-api/reset", b"", parse=False)

    def _call(self, method: str, path: str, body: bytes | None = None, parse: bool = True) -> Any:
        request = urllib.request.Request(
            self.endpoint_url + path,
            data=body if method == "POST" else None,
            method=method,
            # moto's reset endpoints answer a form content type with a 500 (moto-probe §2).
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ControlPlaneError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        return json.loads(payload) if parse and payload else None


def _write_port_file(path: str, port: int) -> None:
    # Write then rename, so a parent polling the file never reads a half-written port.
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(f"{port}\n")
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a fault-injecting simulated AWS.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--seed", type=int, help="seed moto's id generator")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    add_rate_arguments(parser)
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    simulated = SimulatedAws(port=args.port)
    endpoint_url = simulated.start()
    try:
        simulated.faults.update(latency_ms=args.latency_ms, rates=rates_from_args(args))
        if args.seed is not None:
            SimulatedAwsControl(endpoint_url).seed(args.seed)
        if args.port_file:
            _write_port_file(args.port_file, simulated.port)
        print(f"simulated AWS listening on {endpoint_url}", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        simulated.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
