"""The SQS side of the change-event feed: the registration's permission probe, and what a
queue's error means for the poller."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from orgsync.pipelines.aws_errors import classify

PROBE_HANDLE = "orgsync-permission-probe"
# SQS's answers to a receipt handle it does not know: the caller may delete, the handle is bad
INVALID_HANDLE = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue"})
QUEUE_GONE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def queue_access_problems(sqs: Any, url: str) -> list[str]:
    """Why the role cannot receive from and delete on the queue; empty when it can.

    The receive leaves any message it gets visible again at once (VisibilityTimeout 0); the
    delete names a receipt handle no message has, so it can only be refused or found invalid."""
    problems = []
    try:
        sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0, VisibilityTimeout=0
        )
    except Exception as error:
        problems.append(f"the organization role cannot receive from the queue: {_why(error)}")
        if classify(error).code in QUEUE_GONE:
            return problems
    try:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=PROBE_HANDLE)
    except ClientError as error:
        if classify(error).code not in INVALID_HANDLE:
            problems.append(f"the organization role cannot delete on the queue: {_why(error)}")
    except Exception as error:
        problems.append(f"the organization role cannot delete on the queue: {_why(error)}")
    return problems


def queue_error(error: Exception) -> str:
    """The reason shown for a queue that cannot be read, with AWS's code first."""
    code = classify(error).code
    if code in QUEUE_GONE:
        return f"{code}: the queue does not exist (deleted?)"
    return _why(error)


def _why(error: Exception) -> str:
    e = classify(error)
    return f"{e.code}: {e.message}"
