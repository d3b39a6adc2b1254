"""
Each domain error says once what it is: its HTTP status, FTP reply and
label, read by both protocols and the logs.
"""

from twisted.trial import unittest

from fbtwist import errors
from fbtwist.ftp.shell import ftpErrorFor
from fbtwist.logs import publishRejectionReason
from fbtwist.web.responses import httpErrorFor
from tests.davhelpers import recordEvents, startMemoryDAVServer
from tests.helpers import inline, outlookVFB
from tests.unit.test_ftpserver import Session


def _domainErrors():
    found, pending = [], [errors.FreeBusyError]
    while pending:
        cls = pending.pop()
        found.extend(cls.__subclasses__())
        pending.extend(cls.__subclasses__())
    return found


class ErrorAttributesTests(unittest.SynchronousTestCase):
    """
    The attributes every domain error carries, and the protocols reading them.
    """

    def test_everyErrorSaysAll(self):
        """
        Every domain error class has an HTTP status, an FTP reply code and a label.
        """
        classes = _domainErrors()
        self.assertIn(errors.InvalidName, classes)
        for cls in classes:
            self.assertIsInstance(cls.httpStatus, int, cls)
            self.assertTrue(400 <= cls.httpStatus < 600, cls)
            self.assertRegex(cls.ftpReply, r"\A[45][0-9][0-9]\Z", cls)
            self.assertRegex(cls.label, r"\A[a-z]+(-[a-z]+)*\Z", cls)

    def test_protocolsReadTheAttributes(self):
        """
        The HTTP answer, the FTP reply and the rejection reason of every
        domain error are its own attributes.
        """
        for cls in _domainErrors():
            error = cls("why")
            self.assertEqual(httpErrorFor(error).code, cls.httpStatus, cls)
            reply = ftpErrorFor(error)
            self.assertEqual((reply.code, reply.reason), (cls.ftpReply, cls.label), cls)
            self.assertEqual(publishRejectionReason(error), cls.label, cls)

    def test_retryAfter(self):
        """
        An error's C{retryAfter} is its HTTP C{Retry-After}; one given when
        raised wins over the class's.
        """
        self.assertEqual(httpErrorFor(errors.DirectoryUnavailable()).headers, [(b"Retry-After", b"30")])
        self.assertEqual(httpErrorFor(errors.OutOfDescriptors()).headers, [(b"Retry-After", b"5")])
        self.assertEqual(httpErrorFor(errors.TooManyAttempts(retryAfter=70)).headers, [(b"Retry-After", b"70")])
        self.assertEqual(httpErrorFor(errors.NotFound()).headers, [])


class SameLabelOverEveryProtocolTests(unittest.TestCase):
    """
    A rejected publish is counted under the same reason over HTTP and FTP.
    """

    @inline
    async def test_invalidName(self):
        """
        Publishing under a name the store refuses is C{invalid-name} over
        HTTP and over FTP alike.
        """
        events = recordEvents(self)
        server, dav = startMemoryDAVServer(self)
        response, _ = await dav.request("PUT", "/pub/calendar/.alice.vfb", body=outlookVFB())
        self.assertEqual(response.code, 400)
        session = Session(self)
        session.login()
        session.command("PASV")
        self.assertTrue(session.command("STOR /pub/calendar/.alice.vfb")[0].startswith("553"))
        rejected = [(e["protocol"], e["reason"]) for e in events if e["fbEvent"] == "publish-rejected"]
        self.assertEqual(rejected, [("http", "invalid-name"), ("ftp", "invalid-name")])
