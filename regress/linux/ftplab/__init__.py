"""The Linux lab: three network namespaces, real FTP servers and clients,
hostile peers, and the ftp-proxy daemon under test on the gateway.

The modules are plain Python; plugin.py turns them into pytest fixtures
(the lab, the servers, the daemons of a set-up) for the suites in the
directory above. bench/ reaches the same package through bench/ftplab.
"""
