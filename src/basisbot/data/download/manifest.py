"""``manifest.json`` of a download folder: every file fetched and verified, with its source, checksum, month and
rows. A file listed there whose bytes still hash to the listed sha256 is not fetched again."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from basisbot.data.download.months import BadRequest

NAME = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Manifest:
    root: Path
    exchange: str
    source: str
    files: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, exchange: str, source: str) -> Manifest:
        """The folder's manifest (a new one when there is none); another exchange's folder is refused."""
        path = root / NAME
        if not path.exists():
            return cls(root, exchange, source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = dict(data["files"])
            have = str(data["exchange"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f"{path}: not a manifest written by basisbot data download ({exc}); "
                             "move it away or choose another --out") from None
        if have != exchange:
            raise BadRequest(f"{root} holds a {have} download (see {path}); choose another --out for {exchange}")
        return cls(root, exchange, source, files)

    def verified(self, rel: str) -> bool:
        """True when ``rel`` is listed and the file on disk still has the listed sha256."""
        entry = self.files.get(rel)
        path = self.root / rel
        return bool(entry) and path.is_file() and sha256_file(path) == entry.get("sha256")

    def record(self, rel: str, **entry) -> None:
        entry["sha256"] = sha256_file(self.root / rel)
        self.files[rel] = dict(sorted(entry.items()))

    def forget(self, rel: str) -> None:
        self.files.pop(rel, None)

    def save(self) -> Path:
        path = self.root / NAME
        body = {"exchange": self.exchange, "source": self.source,
                "files": {k: self.files[k] for k in sorted(self.files)}}
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path
