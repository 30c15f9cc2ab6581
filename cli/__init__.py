"""The `trustattr` command line (installed as the package trustattr.cli)."""
