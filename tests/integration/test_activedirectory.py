"""
Active Directory: groups (C{objectClass: group}, nested), the reasons a
bind is refused, and the login forms C{DOMAIN\\user} and C{user@suffix}.

The logic is proved on ldaptor's in-memory LDAP server (an AD-like tree,
and a server that refuses binds with AD's diagnostic messages); then
L{SambaTests} proves it against a real Active Directory domain controller,
Samba's, provisioned once per test process (L{tests.samba}).  What needs
no directory is tested in L{tests.unit.test_activedirectory}.
"""

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.ldapserver import LDAPServer
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.access.checker import DirectoryChecker
from fbtwist.access.throttle import LoginThrottle
from fbtwist.directory.demo import DemoLDAPFactory, loadLDIF
from fbtwist.directory.filters import defaultGroupBase
from fbtwist.directory.ldapdirectory import GROUP_NESTING_DEPTH, LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.loginforms import LoginForms
from fbtwist.errors import TooManyAttempts
from tests.helpers import basicAuth, httpClient, outlookVFB, startServer
from tests.samba import ADMIN, ADMIN_PASSWORD
from tests.unit.test_lookup import periodsOf, vfb

BASE = "dc=corp,dc=example"


def _user(name, password, upn=True, extra=""):
    return (
        f"dn: cn={name.title()},ou=users,{BASE}\nobjectClass: top\nobjectClass: user\ncn: {name.title()}\n"
        f"sAMAccountName: {name}\n" + (f"userPrincipalName: {name}@corp.example\n" if upn else "")
        + extra + f"userPassword: {password}\n\n"
    )


def _group(cn, *members):
    return (
        f"dn: cn={cn},ou=groups,{BASE}\nobjectClass: top\nobjectClass: group\ncn: {cn}\n"
        + "".join(f"member: {m}\n" for m in members) + "\n"
    )


def _dn(name, ou="users"):
    return f"cn={name.title() if ou == 'users' else name},ou={ou},{BASE}"


# Nested groups: chain0 > chain1 > ... > chain9, chain<i> holding user c<i>.
CHAIN = "".join(
    _user(f"c{i}", "pw", upn=False)
    + _group(f"chain{i}", _dn(f"c{i}"), *([_dn(f"chain{i + 1}", "groups")] if i < 9 else []))
    for i in range(10)
)

LDIF = f"""\
dn: {BASE}
objectClass: dcObject
dc: corp

dn: ou=users,{BASE}
objectClass: organizationalUnit
ou: users

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

""" + _user("alice", "alice-pw") + _user("dave", "dave-pw", upn=False) + _user("bob", "bob-pw", upn=False) + (
    # robert's userPrincipalName is bob@corp.example: that login is his.
    f"dn: cn=Robert,ou=users,{BASE}\nobjectClass: user\ncn: Robert\nsAMAccountName: robert\n"
    f"userPrincipalName: bob@corp.example\nuserPassword: robert-pw\n\n"
) + _user("carol", "carol-pw") + (
    # Not a user: left out of groups by the URL's filter.
    f"dn: cn=Printer,ou=users,{BASE}\nobjectClass: device\ncn: Printer\nsAMAccountName: printer\n\n"
) + _group("staff", _dn("alice"), _dn("inner", "groups"), _dn("Printer"), f"cn=Gone,ou=users,{BASE}") + _group(
    # A cycle: inner lists staff again.
    "inner", _dn("dave"), _dn("staff", "groups"), _dn("alice")
) + _group("empty") + CHAIN


class ADLikeServer(LDAPServer):
    """
    ldaptor's in-memory server, but refusing the binds of the DNs in its
    factory's C{refusals} as Active Directory does: invalidCredentials with
    the reason's code in the diagnostic message.
    """

    def handle_LDAPBindRequest(self, request, controls, reply):
        code = self.factory.refusals.get(request.dn.decode("utf-8").lower())
        if code is None:
            return super().handle_LDAPBindRequest(request, controls, reply)
        return pureldap.LDAPBindResponse(
            resultCode=49,
            errorMessage=f"80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data {code}, v3839",
        )


class ADLikeFactory(DemoLDAPFactory):
    protocol = ADLikeServer

    def __init__(self, root, refusals):
        super().__init__(root)
        self.refusals = refusals


class InMemoryActiveDirectoryTests(TestCase):
    """
    An Active Directory-like tree on ldaptor's in-memory server.
    """

    async def setUp(self):
        path = FilePath(self.mktemp())
        path.setContent(LDIF.encode("utf-8"))
        factory = ADLikeFactory(loadLDIF(path), {_dn("carol").lower(): "533"})
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        self.url = f"ldap://127.0.0.1:{port.getHost().port}/{BASE}?sAMAccountName?sub?(objectClass=user)"
        self.directory = self.makeDirectory(LoginForms("CORP", ["corp.example", "example.org"]))

    def makeDirectory(self, loginForms=None):
        directory = LDAPDirectory(
            parseLDAPURL(self.url), reactor, loginAttributes=("sAMAccountName", "userPrincipalName"),
            loginForms=loginForms,
        )
        self.addCleanup(directory.close)
        return directory

    async def assertRefused(self, directory, login, password):
        with self.assertRaises(UnauthorizedLogin, msg=login):
            await directory.authenticate(login, password)

    async def test_downLevelLogon(self):
        """
        C{DOMAIN\\user} of the configured domain (any case) logs in as the
        account whose sAMAccountName is user; another domain does not.
        """
        self.assertEqual(await self.directory.authenticate("CORP\\dave", "dave-pw"), "dave")
        self.assertEqual(await self.directory.authenticate("corp\\alice", "alice-pw"), "alice")
        for login in ("OTHER\\dave", "CORP\\", "\\dave", "CORP\\dave@corp.example", "CORP\\CORP\\dave"):
            await self.assertRefused(self.directory, login, "dave-pw")

    async def test_principalWithoutUPN(self):
        """
        C{user@suffix} with a configured suffix logs in an account without
        that userPrincipalName by its sAMAccountName; other suffixes do not.
        """
        self.assertEqual(await self.directory.authenticate("dave@corp.example", "dave-pw"), "dave")
        self.assertEqual(await self.directory.authenticate("dave@EXAMPLE.org", "dave-pw"), "dave")
        self.assertEqual(await self.directory.authenticate("alice@corp.example", "alice-pw"), "alice")
        await self.assertRefused(self.directory, "dave@elsewhere.example", "dave-pw")

    async def test_principalNameWins(self):
        """
        A userPrincipalName is its account's login even when another
        account's sAMAccountName is its user part: bob@corp.example is
        robert, and bob's password does not log in as anybody by it.
        """
        self.assertEqual(await self.directory.authenticate("bob@corp.example", "robert-pw"), "robert")
        await self.assertRefused(self.directory, "bob@corp.example", "bob-pw")
        self.assertEqual(await self.directory.authenticate("CORP\\bob", "bob-pw"), "bob")

    async def test_notConfigured(self):
        """
        Without the settings, neither form is mapped.
        """
        directory = self.makeDirectory()
        await self.assertRefused(directory, "CORP\\dave", "dave-pw")
        await self.assertRefused(directory, "dave@corp.example", "dave-pw")
        self.assertEqual(await directory.authenticate("alice@corp.example", "alice-pw"), "alice")

    async def test_formInjection(self):
        """
        Filter metacharacters in the user part of either form are matched
        literally.
        """
        for login in ("CORP\\*", "CORP\\d*", "CORP\\*)(sAMAccountName=*", "CORP\\dave)(|(cn=*",
                      "*@corp.example", "d*@corp.example", "*)(sAMAccountName=*@corp.example"):
            await self.assertRefused(self.directory, login, "dave-pw")

    async def test_bindDiagnosticLogged(self):
        """
        A bind refused with an Active Directory reason is logged with that
        reason; the client still sees an UnauthorizedLogin.
        """
        events = []
        checker = DirectoryChecker(self.directory)
        checker.log = Logger(observer=events.append)
        with self.assertRaises(UnauthorizedLogin):
            await checker.requestAvatarId(UsernamePassword(b"carol", b"carol-pw"))
        with self.assertRaises(UnauthorizedLogin):
            await checker.requestAvatarId(UsernamePassword(b"alice", b"wrong"))
        self.assertEqual(
            [e["reason"] for e in events],
            ["account disabled (Active Directory data 533)", "wrong password"],
        )

    async def test_throttleCountsEveryForm(self):
        """
        Failed logins as user, DOMAIN\\user and user@suffix count as
        failures of one login.
        """
        checker = DirectoryChecker(
            self.directory, throttle=LoginThrottle(reactor, maxFailures=3, maxFailuresPerAddress=0),
            loginForms=self.directory.loginForms,
        )
        for login in (b"dave", b"CORP\\dave", b"dave@corp.example"):
            with self.assertRaises(UnauthorizedLogin):
                await checker.requestAvatarId(UsernamePassword(login, b"guess"))
        with self.assertRaises(TooManyAttempts):
            await checker.requestAvatarId(UsernamePassword(b"corp\\DAVE", b"dave-pw"))

    async def test_groupFreeBusyMembers(self):
        """
        An Active Directory group's members are found, nested groups
        followed (a cycle ends), entries that do not match the URL's filter
        and missing ones left out.
        """
        base = defaultGroupBase(parseLDAPURL(self.url).base)
        self.assertEqual(await self.directory.groupMembers("staff", base, 50), ["alice", "dave"])
        self.assertEqual(await self.directory.groupMembers("inner", base, 50), ["alice", "dave"])
        self.assertEqual(await self.directory.groupMembers("empty", base, 50), [])
        self.assertIsNone(await self.directory.groupMembers("nobody", base, 50))
        self.assertIsNone(await self.directory.groupMembers("c1", base, 50))

    async def test_groupNestingBounded(self):
        """
        Nested groups are followed GROUP_NESTING_DEPTH deep, no deeper.
        """
        members = await self.directory.groupMembers("chain0", BASE, 50)
        self.assertEqual(members, sorted(f"c{i}" for i in range(GROUP_NESTING_DEPTH)))

    async def test_adminGroupDirect(self):
        """
        A server that is not Active Directory: admin-group membership is
        direct membership of an Active Directory-style group.
        """
        self.assertFalse(await self.directory.isActiveDirectory())
        staff = f"cn=staff,ou=groups,{BASE}"
        self.assertTrue(await self.directory.isMember("alice", staff))
        self.assertFalse(await self.directory.isMember("bob", staff))

    async def test_groupLimit(self):
        """
        Nested members count toward the limit: one more than the limit is
        answered.
        """
        self.assertEqual(len(await self.directory.groupMembers("chain0", BASE, 3)), 4)


# --- against Samba's Active Directory domain controller ---

#: Users only, as etc/activedirectory.ini filters (disabled accounts are
#: left out of logins and groups).
AD_FILTER = "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
#: Users, disabled ones too: for binds that Active Directory refuses.
AD_USERS = "(&(objectCategory=person)(objectClass=user))"

_domain = None
_failure = None


def sambaDomain():
    """
    The test process's Samba domain: provisioned, filled and started on
    first use (10 to 40 s), stopped and removed when the process exits.

    Users (password C{Passw0rd-<name>}): alice (no userPrincipalName),
    bob, carol (disabled), dave (account expired), erin (no logon hours),
    frank (another workstation only), gina (must change her password),
    henry (to be locked out), ivan (for wrong passwords).  Groups: staff =
    alice, carol, inner; inner = bob.  Three bad passwords lock an account.
    """
    global _domain, _failure
    if _failure is not None:
        # Once is enough: every later test would fail the same way, slowly.
        raise type(_failure)(f"(as for an earlier test) {_failure}")
    if _domain is None:
        import atexit
        import shutil
        import tempfile

        from tests.samba import SambaDomain

        domain = SambaDomain(tempfile.mkdtemp(prefix="fbtwist-samba-"))
        atexit.register(lambda: (domain.stop(), shutil.rmtree(domain.directory, ignore_errors=True)))
        try:
            _fill(domain)
        except BaseException as e:
            _failure = e
            raise
        _domain = domain
    return _domain


def _fill(domain):
    """
    Provision and fill L{sambaDomain}'s domain, and start it.
    """
    domain.provision()
    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "henry", "ivan"):
        domain.tool("user", "create", name, f"Passw0rd-{name}")
    domain.tool("user", "create", "gina", "Passw0rd-gina", "--must-change-at-next-login")
    domain.tool("user", "disable", "carol")
    domain.tool("user", "setexpiry", "dave", "--days=-1")
    domain.tool("domain", "passwordsettings", "set", "--account-lockout-threshold=3")
    domain.tool("group", "add", "staff")
    domain.tool("group", "add", "inner")
    domain.tool("group", "addmembers", "inner", "bob")
    domain.tool("group", "addmembers", "staff", "alice,carol,inner")
    domain.start()
    try:
        domain.modify(
            "dn: CN=alice,CN=Users,DC=example,DC=test\nchangetype: modify\ndelete: userPrincipalName\n\n"
            "dn: CN=erin,CN=Users,DC=example,DC=test\nchangetype: modify\nreplace: logonHours\n"
            "logonHours:: " + "A" * 28 + "\n\n"
            "dn: CN=frank,CN=Users,DC=example,DC=test\nchangetype: modify\nreplace: userWorkstations\n"
            "userWorkstations: OTHERPC\n"
        )
    except BaseException:
        domain.stop()
        raise


class SambaTests(TestCase):
    """
    Against a real Active Directory domain controller (Samba's), over LDAP.
    """

    timeout = 120

    def setUp(self):
        self.samba = sambaDomain()

    def directory(self, filter=AD_FILTER, loginForms=None):
        directory = LDAPDirectory(
            parseLDAPURL(self.samba.url(filter=filter)), reactor, bindDN=ADMIN, bindPassword=ADMIN_PASSWORD,
            loginAttributes=("sAMAccountName", "userPrincipalName"), loginForms=loginForms, timeout=10,
        )
        self.addCleanup(directory.close)
        return directory

    async def test_loginForms(self):
        """
        With --ldap-netbios-domain and --ldap-upn-suffixes, EXAMPLE\\alice
        and alice@example.test (alice has no userPrincipalName) log in as
        alice, as Active Directory itself accepts them; without them, or
        for another domain, they do not.
        """
        directory = self.directory(loginForms=LoginForms("EXAMPLE", ["example.test"]))
        for login in ("alice", "EXAMPLE\\alice", "example\\alice", "alice@example.test", "alice@EXAMPLE.TEST"):
            self.assertEqual(await directory.authenticate(login, "Passw0rd-alice"), "alice", login)
        self.assertEqual(await directory.authenticate("bob@example.test", "Passw0rd-bob"), "bob")
        for login in ("OTHER\\alice", "alice@other.test", "EXAMPLE\\a*", "*@example.test"):
            with self.assertRaises(UnauthorizedLogin, msg=login):
                await directory.authenticate(login, "Passw0rd-alice")
        # Active Directory binds these names itself.
        self.assertEqual(self.samba.bindResult("EXAMPLE\\alice", "Passw0rd-alice"), 0)
        self.assertEqual(self.samba.bindResult("alice@example.test", "Passw0rd-alice"), 0)
        plain = self.directory()
        for login in ("EXAMPLE\\alice", "alice@example.test"):
            with self.assertRaises(UnauthorizedLogin, msg=login):
                await plain.authenticate(login, "Passw0rd-alice")

    async def test_bindReasons(self):
        """
        Each account state Active Directory refuses a bind for is logged
        with its own reason (disabled, expired, logon hours, workstation,
        must change, locked out, wrong password); the client gets an
        UnauthorizedLogin each time.
        """
        events = []
        checker = DirectoryChecker(self.directory(filter=AD_USERS))
        checker.log = Logger(observer=events.append)

        async def refused(login, password=None):
            with self.assertRaises(UnauthorizedLogin, msg=login):
                await checker.requestAvatarId(
                    UsernamePassword(login.encode(), (password or f"Passw0rd-{login}").encode()))
            return events[-1]["reason"]

        self.assertEqual(await refused("carol"), "account disabled (Active Directory data 533)")
        self.assertEqual(await refused("dave"), "account expired (Active Directory data 701)")
        self.assertEqual(await refused("erin"), "not permitted to log on at this time (Active Directory data 530)")
        self.assertEqual(await refused("frank"),
                         "not permitted to log on at this workstation (Active Directory data 531)")
        self.assertEqual(await refused("gina"), "password must be changed (Active Directory data 773)")
        self.assertEqual(await refused("ivan", "wrong"), "wrong password (Active Directory data 52e)")
        for _ in range(3):
            await refused("henry", "wrong")
        self.assertEqual(await refused("henry"), "account locked out (Active Directory data 775)")

    async def test_groupFreeBusy(self):
        """
        /calendar/group/staff.vfb merges an Active Directory group's
        members, the nested group's too, without the disabled member's,
        with the group base left to its default (the URL's base is the
        domain's root).
        """
        secret = FilePath(self.mktemp())
        secret.setContent(ADMIN_PASSWORD.encode() + b"\n")
        server = await startServer(self, "--ldap", self.samba.url(filter=AD_FILTER), "--bind-dn", ADMIN,
                                   "--bind-password-file", secret.path, "--ldap-timeout", "10")
        server.store.write(("alice.vfb",), vfb("FREEBUSY:20210105T090000Z/20210105T100000Z"))
        server.store.write(("bob.vfb",), vfb("FREEBUSY:20210105T093000Z/20210105T110000Z"))
        server.store.write(("carol.vfb",), vfb("FREEBUSY:20210105T140000Z/20210105T150000Z"))
        http = httpClient(self)
        for group, expected in (("staff", [("20210105T090000Z", "20210105T110000Z")]),
                                ("inner", [("20210105T093000Z", "20210105T110000Z")])):
            response = await http.get(server.url(f"/calendar/group/{group}.vfb?start=20210105&end=20210106"))
            content = await response.content()
            self.assertEqual(response.code, 200, content)
            self.assertEqual([p[:2] for p in periodsOf(content)[0]], expected)
        response = await http.get(server.url("/calendar/group/nobody.vfb"))
        await response.content()
        self.assertEqual(response.code, 404)

    async def test_adminGroupNested(self):
        """
        The server is recognised as Active Directory, and members of a
        group nested in the admin group are members (its in-chain rule);
        disabled or outside members are not.
        """
        directory = self.directory()
        self.assertTrue(await directory.isActiveDirectory())
        staff, inner = (f"CN={cn},CN=Users,DC=example,DC=test" for cn in ("staff", "inner"))
        self.assertTrue(await directory.isMember("alice", staff))
        self.assertTrue(await directory.isMember("bob", staff))
        self.assertTrue(await directory.isMember("bob", inner))
        self.assertFalse(await directory.isMember("alice", inner))
        self.assertFalse(await directory.isMember("carol", staff))
        self.assertFalse(await directory.isMember("dave", staff))
        self.assertFalse(await directory.isMember("*", staff))
        self.assertFalse(await directory.isMember("bob", "CN=nothing,CN=Users,DC=example,DC=test"))

    async def test_publishWithLoginForm(self):
        """
        EXAMPLE\\alice publishes alice's file, and only hers.
        """
        secret = FilePath(self.mktemp())
        secret.setContent(ADMIN_PASSWORD.encode() + b"\n")
        server = await startServer(
            self, "--ldap", self.samba.url(filter=AD_FILTER), "--bind-dn", ADMIN, "--bind-password-file",
            secret.path, "--ldap-timeout", "10", "--ldap-login-attributes", "sAMAccountName,userPrincipalName",
            "--ldap-netbios-domain", "EXAMPLE", "--ldap-upn-suffixes", "example.test",
        )
        http = httpClient(self)
        for login, path, code in (("EXAMPLE\\alice", "alice", 201), ("alice@example.test", "alice", 204),
                                  ("EXAMPLE\\alice", "bob", 403), ("alice@example.test", "bob", 403)):
            response = await http.put(server.url(f"/pub/calendar/{path}.vfb"), data=outlookVFB("alice@example.test"),
                                      headers=basicAuth(login, "Passw0rd-alice"))
            await response.content()
            self.assertEqual(response.code, code, (login, path))
        self.assertFalse(server.root.child("bob.vfb").exists())
