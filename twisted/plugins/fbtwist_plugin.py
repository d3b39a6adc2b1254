from twisted.application.service import ServiceMaker

freebusy = ServiceMaker(
    "fbtwist", "fbtwist.tap", "Free/busy calendar server (HTTP, WebDAV, FTP, LDAP)", "freebusy"
)
