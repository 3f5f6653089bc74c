"""The cluster's trust: its CA, host certificates, join tokens and the TLS files a client uses."""
