"""The command line as a user meets it: real subprocesses, one clear line per bad input, exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tasks.test_ingest import write_n_frames

CLI = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None, timeout=600):
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d / "missing.mp4", "file not found"),
        (lambda d: (d / "notes.mp4").write_text("hello\n" * 50) and d / "notes.mp4", "not a readable video"),
        (lambda d: write_n_frames(d / "empty.avi", 0), "no frames"),
        (lambda d: write_n_frames(d / "one.avi", 1), "only 1 usable frame"),
    ],
)
def test_bad_inputs_get_one_line(tmp_path, make, fragment):
    src = make(tmp_path)
    proc = cli("run", src, "--out", tmp_path / "out")
    assert_clean_error(proc, str(src), fragment)
    assert not (tmp_path / "out").exists()


def test_existing_output_folder_is_refused_and_kept(tmp_path, blinking_clip):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    proc = cli("run", blinking_clip.path, "--out", out)
    assert_clean_error(proc, str(out), "--overwrite")
    assert (out / "mine.txt").read_text() == "precious"


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("bad.toml", "[cyclicity]\nscore_threshold = -1\n", "cyclicity.score_threshold"),
        ("typo.yaml", "render:\n  feathr_px: 2\n", "render.feathr_px"),
        ("broken.toml", "[ingest\n", "cannot parse"),
        ("conf.json", "{}", "must be .toml"),
    ],
)
def test_bad_config_files_are_named(tmp_path, blinking_clip, name, text, fragment):
    cfg = tmp_path / name
    cfg.write_text(text)
    proc = cli("run", blinking_clip.path, "--out", tmp_path / "out", "--config", cfg)
    assert_clean_error(proc, str(cfg), fragment)


def test_run_with_config_then_info(tmp_path, blinking_clip):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ingest]\nmax_long_side = 160\n[render]\nwrite_gif = false\nwrite_webp = true\n")
    out = tmp_path / "out"
    proc = cli("run", blinking_clip.path, "--out", out, "--config", cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "animated" in proc.stdout + proc.stderr  # the summary table
    result = json.loads((out / "result.json").read_text())
    assert result["width"] == 160 and result["outputs"]["webp"] and result["outputs"]["gif"] is None
    assert (out / "cinemagraph.webp").stat().st_size > 0 and not (out / "cinemagraph.gif").exists()
    info = cli("info", out)
    assert info.returncode == 0, info.stderr
    for name in ("frames", "warped", "cyclic_score", "animated_mask", "loop", "reference_index"):
        assert name in info.stdout
    # rerun with --resume skips every stored stage
    again = cli("run", blinking_clip.path, "--out", out, "--config", cfg, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "result.json").read_text())["skipped_stages"] == [
        "ingest",
        "shots",
        "window",
        "motion",
        "warp",
        "cyclicity",
        "displays",
        "render",
    ]


def test_info_on_a_missing_store(tmp_path):
    assert_clean_error(cli("info", tmp_path / "nothing.zarr"), "no such store")


def test_schema_file_is_current():
    from schemas.results import RESULT_SCHEMA_PATH, CinemagraphResult

    assert json.loads(RESULT_SCHEMA_PATH.read_text()) == CinemagraphResult.model_json_schema()


def test_layers_import_one_way():
    """kernels import only numpy/numba (+ each other); tasks never import flows; schemas import no layer."""
    import ast

    allowed = {
        "kernels": {
            "kernels",
            "numpy",
            "numba",
            "llvmlite",  # Numba's own LLVM binding: kernels._blas registers BLAS symbols for compiled kernels
            "math",
            "__future__",
            "typing",
            "collections",
            "dataclasses",
            "functools",
        },
    }
    forbidden = {
        "tasks": {"flows"},
        "schemas": {"flows", "tasks", "kernels"},
        "kernels": {"flows", "tasks", "schemas"},
    }
    for layer in ("kernels", "tasks", "schemas"):
        for path in (ROOT / layer).rglob("*.py"):  # pipeline subpackages too (kernels/still, tasks/still)
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    top = m.split(".")[0]
                    assert top not in forbidden[layer], f"{path.name} imports {m}"
                    if layer in allowed:
                        assert top in allowed[layer], (
                            f"{path.name} imports {m}: kernels are numpy + numba only"
                        )


def test_demo_command(tmp_path):
    proc = cli("demo", "--out", tmp_path / "demo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "demo" / "result.json").read_text())
    assert len(result["regions"]) == 3 and result["quality"]["stillness"] == 0
    assert np.isfinite(result["quality"]["seam"])
    # what the viewer sees: every light wraps like an ordinary step, and the GIF keeps its colours
    for region in result["regions"]:
        assert region["wrap_change"] <= region["largest_step"], region
    assert result["outputs"]["gif_mean_abs_error"] <= 4.0


def test_demo_takes_a_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[render]\nmax_retime = 2\n")
    proc = cli("demo", "--out", tmp_path / "demo", "--config", cfg)
    assert_clean_error(proc, str(cfg), "render.max_retime")
    assert not (tmp_path / "demo").exists()  # refused before anything ran


def test_3d_options_refuse_bad_requests_in_one_line(tmp_path, blinking_clip):
    assert_clean_error(cli("demo", "--3d", "--out", tmp_path / "d"), "--3d needs --moving")
    views = tmp_path / "views.json"
    views.write_text('{"intrinsics": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}')
    config = tmp_path / "c.toml"
    config.write_text(f'[render3d]\nenabled = true\npath_file = "{views}"\n')
    proc = cli("run", blinking_clip.path, "--out", tmp_path / "o", "--config", config)
    assert_clean_error(proc, str(views), "needs the keys")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
