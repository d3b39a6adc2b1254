"""
The credentials checker: logins and passwords checked against the
directory, for HTTP Basic and FTP alike.
"""

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from fbtwist.interfaces import IDirectory


def credentialText(value) -> str:
    """
    Normalise a login or password to text.

    HTTP Basic hands over bytes; Twisted's FTP server hands over text decoded
    as latin-1.  Both are read as UTF-8 where they are valid UTF-8 (what
    current clients send) and as latin-1 otherwise.
    """
    if isinstance(value, str):
        try:
            value = value.encode("latin-1")
        except UnicodeEncodeError:
            return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@implementer(ICredentialsChecker)
class DirectoryChecker:
    """
    Checks L{IUsernamePassword} credentials with search-then-bind.

    Fails with L{UnauthorizedLogin} for bad credentials only; a directory
    that cannot answer fails with L{fbtwist.errors.DirectoryUnavailable}.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, directory: IDirectory):
        self.directory = directory

    def requestAvatarId(self, credentials) -> defer.Deferred:
        login = credentialText(credentials.username)
        password = credentialText(credentials.password)
        if not login or not password:
            return defer.fail(UnauthorizedLogin("empty login or password"))
        if len(login) > 256 or len(password) > 1024 or "\x00" in login + password:
            return defer.fail(UnauthorizedLogin("malformed credentials"))
        d = self.directory.authenticate(login, password)

        def failed(failure):
            if failure.check(UnauthorizedLogin):
                self.log.info("login failed for {login!r}: {reason}", login=login, reason=failure.getErrorMessage())
            return failure

        return d.addErrback(failed)
