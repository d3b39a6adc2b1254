"""
What a listener that cannot listen says: one sentence, the same from a
single process and from the master of C{--workers}.
"""

from twisted.internet.error import CannotListenError


def cannotListen(setting: str, description: str, error: CannotListenError) -> str:
    """
    The sentence that ends a process that cannot listen on C{description}
    of C{--setting} (also said by L{fbtwist.ops.workers.WorkerMaster}).
    """
    reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
    return (f"fbtwist cannot listen on --{setting} {description}: {reason}; "
            f"stop what uses that port or give --{setting} another endpoint")
