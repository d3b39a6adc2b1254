"""
The LDAP directory client: ldaptor connections and pools, LDAP URLs, TLS to
the directory and the index of names.
"""
