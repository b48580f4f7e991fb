"""Fetch URL sources with yt-dlp (when it is installed and the URL is allowed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tasks.video import VideoError


def ytdlp_available() -> bool:
    return importlib.util.find_spec("yt_dlp") is not None


def fetch_url(url: str, download_dir: str | Path, item_id: str) -> Path:
    """Download ``url`` to ``download_dir/item_id.<ext>`` (kept and reused on reruns).

    Raises
    ------
    VideoError
        yt-dlp is not installed, or the download failed.
    """
    folder = Path(download_dir)
    existing = sorted(folder.glob(f"{item_id}.*"))
    existing = [p for p in existing if not p.name.endswith((".part", ".ytdl"))]
    if existing:
        return existing[0]
    if not ytdlp_available():
        raise VideoError(f"{url}: URL sources need yt-dlp (pip install yt-dlp)")
    import yt_dlp

    folder.mkdir(parents=True, exist_ok=True)
    options = {
        "outtmpl": str(folder / f"{item_id}.%(ext)s"),
        "format": "bv*[height<=1080]+ba/b[height<=1080]/bv*/b",
        "quiet": True,
        "noprogress": True,
        "noplaylist": True,
        "retries": 3,
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
            path = Path(ydl.prepare_filename(info))
    except Exception as exc:
        raise VideoError(f"{url}: download failed ({str(exc).splitlines()[0][:200]})") from None
    if not path.exists():
        candidates = [p for p in folder.glob(f"{item_id}.*") if not p.name.endswith(".part")]
        if not candidates:
            raise VideoError(f"{url}: download produced no file")
        path = candidates[0]
    return path
