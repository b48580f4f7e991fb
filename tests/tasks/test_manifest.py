import json

import pytest

from schemas.config import WindowParams
from schemas.corpus import ShotParams, SourcePolicy
from tasks.manifest import ManifestError, read_manifest, resolve_local, safe_id, unique_ids, url_allowed
from tasks.shots import plan_items


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"x")
    (root / "sub" / "b.mkv").write_bytes(b"x")
    (root / "notes.txt").write_text("no")
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    (root / "link.mp4").symlink_to(outside)
    return root, outside


def test_folder_manifest_lists_videos(tree):
    root, _ = tree
    base, entries, skipped = read_manifest(root)
    assert base == root and not skipped
    assert sorted(e.source for e in entries) == ["a.mp4", "link.mp4", "sub/b.mkv"]


def test_csv_and_jsonl_rows_with_problems_are_explained(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text(
        'source,id,options\na.mp4,first,\nb.mp4,,"{""ingest"": {""stride"": 2}}"\nc.mp4,,{oops\n,noid,\n'
    )
    base, entries, skipped = read_manifest(csv)
    assert [e.source for e in entries] == ["a.mp4", "b.mp4"]
    assert entries[1].options == {"ingest": {"stride": 2}}
    assert len(skipped) == 2 and all(s.status == "skipped" for s in skipped)
    assert "row 4" in skipped[0].reason and "JSON" in skipped[0].reason
    assert "row 5" in skipped[1].reason and "source" in skipped[1].reason
    jl = tmp_path / "m.jsonl"
    jl.write_text(
        json.dumps({"source": "a.mp4"})
        + "\n[1, 2]\n{broken\n"
        + json.dumps({"source": "b", "extra": 1})
        + "\n"
    )
    _, entries, skipped = read_manifest(jl)
    assert len(entries) == 1 and len(skipped) == 3
    assert {"not a JSON object", "not valid JSON"} <= {
        s.reason.split(": ", 1)[1].split(" (")[0] for s in skipped
    }


def test_unreadable_manifests_raise(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "m.xlsx").write_text("")
    with pytest.raises(ManifestError, match="folder, a .csv or a .jsonl"):
        read_manifest(tmp_path / "m.xlsx")
    (tmp_path / "h.csv").write_text("path\nx.mp4\n")
    with pytest.raises(ManifestError, match="'source' column"):
        read_manifest(tmp_path / "h.csv")


def test_paths_must_stay_inside_the_roots(tree):
    root, outside = tree
    ok, reason = resolve_local("sub/b.mkv", root, [root.resolve()])
    assert ok is not None and reason is None
    for source, fragment in [
        ("../outside.mp4", "outside the allowed roots"),
        ("link.mp4", "outside the allowed roots"),  # a symlink out of the root
        (str(outside), "outside the allowed roots"),
        ("missing.mp4", "file not found"),
        ("sub", "not a file"),
    ]:
        path, reason = resolve_local(source, root, [root.resolve()])
        assert path is None and fragment in reason, (source, reason)
    # the same link is fine when its target's folder is allowed too
    path, _ = resolve_local("link.mp4", root, [root.resolve(), outside.parent.resolve()])
    assert path == outside.resolve()


def test_url_allow_list():
    policy = SourcePolicy(url_hosts=["videos.example.org", "*.cdn.example.org"])
    assert url_allowed("https://videos.example.org/a.mp4", policy) is None
    assert url_allowed("https://x.cdn.example.org/a.mp4", policy) is None
    assert "not on the allow-list" in url_allowed("https://evil.example.com/a.mp4", policy)
    assert "scheme 'http'" in url_allowed("http://videos.example.org/a.mp4", policy)
    assert "scheme 'file'" in url_allowed("file:///etc/passwd", policy)
    assert "not on the allow-list" in url_allowed("https://videos.example.org.evil.com/a", policy)


def test_ids_are_unique_and_safe(tmp_path):
    from schemas.corpus import ManifestEntry

    entries = [
        ManifestEntry(source="a/clip.mp4"),
        ManifestEntry(source="b/clip.mp4"),
        ManifestEntry(source="x.mp4", id="Shot 1/../x"),
        ManifestEntry(source="y.mp4", id="Shot 1/../x", row=9),
    ]
    named, skipped = unique_ids(entries)
    ids = [i for _, i in named]
    assert ids == ["clip", "clip-2", "Shot_1_.._x"]  # one path component each
    assert len(skipped) == 1 and "duplicate id" in skipped[0].reason and "row 9" in skipped[0].reason
    assert safe_id("../../etc") == "etc"


def test_shot_planning():
    params = ShotParams(min_shot_frames=24, reference_every=100)
    window = WindowParams()
    items, skipped = plan_items("v", "/v.mp4", [(0, 10), (10, 90), (90, 400)], params, window)
    assert len(skipped) == 1 and "shorter than min_shot_frames" in skipped[0].reason
    short = [i for i in items if i.shot == 1]
    assert (
        len(short) == 1
        and short[0].reference_frame == 50
        and (short[0].start_frame, short[0].end_frame) == (10, 90)
    )
    long = [i for i in items if i.shot == 2]
    assert [i.reference_frame for i in long] == [140, 240, 340]
    for i in long:
        assert i.start_frame == max(90, i.reference_frame - 50) and i.end_frame == min(
            400, i.reference_frame + 51
        )
    assert len({i.item_id for i in items}) == len(items)
