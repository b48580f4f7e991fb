"""The README's option table is generated from the config models and must be current."""

import pytest

from schemas import options_doc
from schemas.config import PipelineConfig, RenderParams


def test_readme_option_table_is_current():
    text = options_doc.README.read_text(encoding="utf-8")
    assert options_doc.render_readme(text) == text, (
        "README.md's option table is stale: run `python -m schemas.options_doc --write`"
    )
    assert options_doc.main(["--check"]) == 0


def test_every_option_of_every_section_is_listed_with_its_default():
    block = options_doc.options_markdown()
    for section, field in PipelineConfig.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            for name in sub.model_fields:
                assert f"| `{section}.{name}` |" in block, f"{section}.{name} missing"
        else:
            assert f"| `{section}` |" in block
    # the render options the old hand-written list missed, with their defaults
    for name in ("inpaint", "stabilise", "rpca", "rpca_svd", "display_playback", "whole_periods", "max_retime"):
        default = RenderParams.model_fields[name].default
        assert f"| `render.{name}` | `" in block and str(default).lower() in block.split(f"`render.{name}`")[1][:40].lower()


def test_a_stale_readme_is_detected(tmp_path):
    readme = tmp_path / "README.md"
    good = options_doc.render_readme(options_doc.README.read_text(encoding="utf-8"))
    # an option added to a model but not to the README: its row is missing
    stale = good.replace("| `render.max_retime` |", "| `render.max_retimed` |")
    readme.write_text(stale, encoding="utf-8")
    assert options_doc.main(["--check", "--readme", str(readme)]) == 1
    assert options_doc.main(["--write", "--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == good
    assert options_doc.main(["--check", "--readme", str(readme)]) == 0


def test_missing_markers_are_an_error():
    with pytest.raises(ValueError, match="markers"):
        options_doc.render_readme("# no table here\n")
