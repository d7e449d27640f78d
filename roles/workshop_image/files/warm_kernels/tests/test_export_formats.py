"""The export formats' listing as the image's build wrote it: what the server may trust."""

import json

from tmpnb_warm_kernels import export_formats


def test_the_build_s_answer_is_sent_as_written(tmp_path):
    answer = tmp_path / "export_formats.json"
    answer.write_text(json.dumps({"html": {"output_mimetype": "text/html"}}), encoding="utf-8")
    assert export_formats.load(answer) == answer.read_text(encoding="utf-8")


def test_no_file_or_a_broken_one_leaves_the_listing_to_jupyter_server(tmp_path):
    answer = tmp_path / "export_formats.json"
    assert export_formats.load(answer) is None
    for broken in ("", "{not json", '["html"]', "null"):
        answer.write_text(broken, encoding="utf-8")
        assert export_formats.load(answer) is None, broken
