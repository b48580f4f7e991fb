"""Manifests of a corpus: a folder to scan, or a CSV / JSONL file of sources.

CSV columns (header required): ``source`` (required), ``id``, ``options`` (a JSON object of
config overrides).  JSONL: one object per line with the same keys.  Every row that cannot be
used becomes an explained skip (:class:`schemas.corpus.ItemOutcome` with status ``skipped``),
never an exception that stops the corpus.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
from pathlib import Path
from urllib.parse import urlparse

from pydantic import ValidationError

from schemas.corpus import VIDEO_SUFFIXES, ItemOutcome, ManifestEntry, SourcePolicy


class ManifestError(ValueError):
    """The manifest itself cannot be read (missing, unknown format)."""


def _skip(source: str, item_id: str, reason: str) -> ItemOutcome:
    return ItemOutcome(item_id=item_id, source=source, status="skipped", reason=reason)


def safe_id(text: str) -> str:
    """A folder-safe item id: letters, digits, '.', '_' and '-' only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return cleaned or "item"


def read_manifest(manifest: str | Path) -> tuple[Path, list[ManifestEntry], list[ItemOutcome]]:
    """Entries of a manifest and the rows skipped while reading it.

    Returns
    -------
    base : Path
        The folder relative paths are resolved against.
    entries : list of ManifestEntry
    skipped : list of ItemOutcome
    """
    path = Path(manifest)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.is_dir():
        entries = [
            ManifestEntry(source=str(p.relative_to(path)), id=None, row=0)
            for p in sorted(path.rglob("*"))
            if p.suffix.lower() in VIDEO_SUFFIXES and (p.is_file() or p.is_symlink())
        ]
        return path, entries, []
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict | None, str | None]] = []
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "source" not in reader.fieldnames:
                raise ManifestError(f"{path}: a CSV manifest needs a header with a 'source' column")
            for k, row in enumerate(reader, start=2):
                options = row.get("options")
                try:
                    row = {key: v for key, v in row.items() if key is not None and v not in (None, "")}
                    if options:
                        row["options"] = json.loads(options)
                    rows.append((k, row, None))
                except json.JSONDecodeError as exc:
                    rows.append((k, None, f"options is not valid JSON ({exc.msg})"))
    elif suffix in {".jsonl", ".ndjson"}:
        for k, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                rows.append((k, obj, None) if isinstance(obj, dict) else (k, None, "not a JSON object"))
            except json.JSONDecodeError as exc:
                rows.append((k, None, f"not valid JSON ({exc.msg})"))
    else:
        raise ManifestError(f"{path}: manifest must be a folder, a .csv or a .jsonl file")
    entries, skipped = [], []
    for k, obj, problem in rows:
        label = f"{path.name}:{k}"
        if problem is None:
            try:
                entries.append(ManifestEntry.model_validate({**obj, "row": k}))
                continue
            except ValidationError as exc:
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        source = str(obj.get("source", "")) if isinstance(obj, dict) else ""
        skipped.append(_skip(source, label, f"unreadable manifest row {k}: {problem}"))
    return path.parent, entries, skipped


def is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def url_allowed(url: str, policy: SourcePolicy) -> str | None:
    """None when the URL may be fetched, else the reason it may not."""
    parsed = urlparse(url)
    if parsed.scheme.lower() not in {s.lower() for s in policy.url_schemes}:
        return f"URL scheme '{parsed.scheme}' is not allowed (allowed: {', '.join(policy.url_schemes) or 'none'})"
    host = (parsed.hostname or "").lower()
    if not any(fnmatch.fnmatch(host, pattern.lower()) for pattern in policy.url_hosts):
        return f"host '{host}' is not on the allow-list"
    return None


def resolve_local(source: str, base: Path, roots: list[Path]) -> tuple[Path | None, str | None]:
    """(path, None) for a usable local source, else (None, reason).

    The path is resolved (links followed, '..' collapsed) and must lie inside one of ``roots``
    (also resolved): no '..' escapes, no symlinks pointing out of the root.
    """
    candidate = Path(source)
    if not candidate.is_absolute():
        candidate = base / candidate
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        return None, f"file not found: {candidate}"
    except (OSError, RuntimeError) as exc:  # loops of links, permissions
        return None, f"cannot resolve {candidate}: {exc}"
    if not any(real.is_relative_to(r) for r in roots):
        return (
            None,
            f"{candidate} resolves to {real}, outside the allowed roots ({', '.join(map(str, roots))})",
        )
    if not real.is_file():
        return None, f"{candidate} is not a file"
    return real, None


def unique_ids(entries: list[ManifestEntry]) -> tuple[list[tuple[ManifestEntry, str]], list[ItemOutcome]]:
    """Give every entry an id; an explicit id used twice is a skip of the later rows."""
    out, skipped, seen = [], [], set()
    for e in entries:
        if e.id is not None:
            item_id = safe_id(e.id)
            if item_id in seen:
                skipped.append(_skip(e.source, item_id, f"duplicate id '{e.id}' (manifest row {e.row})"))
                continue
        else:
            stem = safe_id(Path(urlparse(e.source).path).stem if is_url(e.source) else Path(e.source).stem)
            item_id, n = stem, 2
            while item_id in seen:
                item_id, n = f"{stem}-{n}", n + 1
        seen.add(item_id)
        out.append((e, item_id))
    return out, skipped
