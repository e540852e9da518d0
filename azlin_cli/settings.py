"""Where the CLI finds the API and a token for it.

In order: the environment (AZLIN_API_URL, AZLIN_API_TOKEN), the saved configuration
(`azlin-storage login`, in $XDG_CONFIG_HOME/azlin-storage/config.json), and last the local stack's
`dev.env` (written by `make dev` in `.local/` of this directory or one above it, or in
AZLIN_LOCAL_DIR): against `make dev` nothing needs configuring.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEV_ENV = Path(".local") / "dev.env"


@dataclass(frozen=True)
class Config:
    api_url: str
    scope: str | None = None  # e.g. api://<API client id>/.default; None: a fixed token
    tenant: str | None = None
    device_code: bool = False  # sign in with a device code (a headless box) instead of az/env
    token: str | None = None  # a fixed token (the environment's, or the local stack's)
    source: str = ""  # where this came from, for messages


class NotConfigured(Exception):
    """No API to talk to: the message says how to name one."""


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "azlin-storage" / "config.json"


def save(config: Config) -> Path:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {k: v for k, v in asdict(config).items() if k not in ("token", "source")}  # never a token
    stored = {k: v for k, v in kept.items() if v not in (None, False)}
    path.write_text(json.dumps(stored, indent=2) + "\n")
    return path


def find_dev_env(start: Path | None = None) -> Path | None:
    """The local stack's settings: under AZLIN_LOCAL_DIR when set (as `make dev` reads it), else
    `.local/dev.env` here or in a directory above."""
    if os.environ.get("AZLIN_LOCAL_DIR"):
        named = Path(os.environ["AZLIN_LOCAL_DIR"]) / "dev.env"
        return named if named.is_file() else None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEV_ENV
        if candidate.is_file():
            return candidate
    return None


def read_dev_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def load() -> Config:
    url = os.environ.get("AZLIN_API_URL")
    token = os.environ.get("AZLIN_API_TOKEN")
    if url:
        return Config(url.rstrip("/"), scope=os.environ.get("AZLIN_API_SCOPE"), token=token,
                      source="the environment (AZLIN_API_URL)")
    path = config_file()
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            config = Config(**{k: v for k, v in stored.items() if k in Config.__dataclass_fields__})
        except (ValueError, TypeError) as err:
            raise NotConfigured(f"{path} is not a configuration this CLI wrote ({err}); "
                                "run `azlin-storage login` again") from None
        return Config(config.api_url.rstrip("/"), config.scope, config.tenant, config.device_code,
                      token=token, source=str(path))
    dev_env = find_dev_env()
    if dev_env is not None:
        values = read_dev_env(dev_env)
        if values.get("API_URL"):
            return Config(values["API_URL"].rstrip("/"), token=token or values.get("API_TOKEN"),
                          source=f"the local stack ({dev_env})")
    raise NotConfigured("No API is configured: run `azlin-storage login --api-url https://<app>.azurewebsites"
                        ".net/api --scope api://<API client id>/.default`, set AZLIN_API_URL, or start the "
                        "local stack with `make dev` and run this from its directory")
