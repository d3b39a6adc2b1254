"""
The WebDAV lock gauge of C{/metrics}, on a whole server in memory
(L{tests.memory}).
"""

from twisted.trial import unittest

from tests.davhelpers import lockBody, startMemoryDAVServer
from tests.helpers import inline


class LockGaugeTests(unittest.TestCase):
    """
    /metrics counts the WebDAV locks kept in the tree.
    """

    @inline
    async def test_lockGauge(self):
        """
        The gauge reads 0, then 1 while alice holds a lock, then 0 after
        UNLOCK.
        """
        from prometheus_client.parser import text_string_to_metric_families

        _, dav = startMemoryDAVServer(self)

        async def locks():
            response, body = await dav.request("GET", "/metrics", login=None)
            self.assertEqual(response.code, 200)
            for family in text_string_to_metric_families(body.decode("utf-8")):
                if family.name == "fbtwist_dav_locks":
                    return family.samples[0].value
            self.fail("no fbtwist_dav_locks gauge")

        self.assertEqual(await locks(), 0)
        response, _ = await dav.request("LOCK", "/pub/calendar/alice.vfb", body=lockBody())
        token = response.headers.getRawHeaders(b"Lock-Token")[0]
        self.assertEqual(await locks(), 1)
        await dav.request("UNLOCK", "/pub/calendar/alice.vfb", headers={"Lock-Token": token})
        self.assertEqual(await locks(), 0)

