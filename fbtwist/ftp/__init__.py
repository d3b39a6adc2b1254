"""
The FTP publishing protocol: the server, its shell over the calendar tree,
and TLS.
"""
