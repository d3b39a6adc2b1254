"""
A directory with every kind of lookup name the name index tells apart
(shared uids and local parts, entries without a uid, uids that look like
addresses, non-ASCII case), as LDIF for slapd or ldaptor's in-memory
server, and the names to resolve against it.
"""

from tests.slapd import hashPassword

BASE = "dc=example,dc=com"
PEOPLE = "ou=people," + BASE


def _person(rdn, uid=None, mails=(), password=None):
    lines = [f"dn: {rdn},{PEOPLE}", "objectClass: inetOrgPerson", f"cn: {rdn.split('=', 1)[1]}", "sn: x"]
    if uid:
        lines.append(f"uid: {uid}")
    lines += [f"mail: {m}" for m in mails]
    if password:
        lines.append(f"userPassword: {hashPassword(password)}")
    return "\n".join(lines) + "\n\n"


LDIF = (
    f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
    + _person("uid=alice", "alice", ["alice@example.com"], "alice-pw")
    + _person("uid=bob", "bob", ["robert@example.com", "bob@example.com"], "bob-pw")
    # A uid wins over another user's local part.
    + _person("uid=robert", "robert", ["rob@example.com"])
    + _person("uid=pat1", "pat1", ["pat@example.com"])
    + _person("uid=pat2", "pat2", ["pat@example.org"])
    # Two entries with one uid: the uid is ambiguous, the addresses not.
    + _person("cn=Twin One", "twin", ["twin@example.com"])
    + _person("cn=Twin Two", "twin", ["twin@example.org"])
    + _person("cn=No Uid", None, ["nouid@example.com"])
    + _person("uid=Carol", "Carol", ["CAROL.Smith@Example.com"])
    # A uid that looks like an address, and that address as another's mail.
    + _person("cn=Eve", "eve@example.com", ["eve@corp.example"])
    + _person("uid=evelyn", "evelyn", ["eve@example.com", "evelyn@example.com"])
)

#: Names to resolve: every kind, in several cases.
NAMES = [
    "alice", "ALICE", "alice@example.com", "Alice@Example.COM", "bob", "robert", "Robert", "robert@example.com",
    "rob", "pat", "pat@example.com", "pat@example.org", "pat1", "twin", "twin@example.com", "TWIN@example.org",
    "nouid", "nouid@example.com", "carol", "carol.smith", "CAROL.SMITH@EXAMPLE.COM", "eve", "eve@example.com",
    "eve@corp.example", "evelyn", "nobody", "nobody@example.com", "example.com", "*", "al",
]
