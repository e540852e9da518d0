"""Stand-ins for Azure on a workstation and in tests. Never deployed (.funcignore)."""
