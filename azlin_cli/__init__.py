"""The command line client of the azlin storage service: `azlin-storage` (see docs/cli.md)."""
