from __future__ import annotations

import io
from pathlib import Path

import pytest

from crawlpool.errors import SeedError
from crawlpool.seeds import load_seeds


def test_a_seed_file_with_bad_lines_keeps_the_good_ones(tmp_path: Path) -> None:
    seeds = tmp_path / "s.txt"
    seeds.write_text(
        "# comment\n\nhttps://Example.com:443/a#x\nftp://files.example.com/\nnot a url\n"
        "  https://example.com/a  \nhttp://[::1]:8080/\nhttp://example.com:99999/\n"
    )
    result = load_seeds([str(seeds)])
    assert result.urls == ["https://example.com/a", "http://[::1]:8080/"]
    assert result.warnings == [
        f"{seeds}:4: not an http(s) URL (scheme ftp:), skipped",
        f"{seeds}:5: not a URL (expected http:// or https://), skipped",
        f"{seeds}:8: not a valid URL, skipped",
    ]


def test_seeds_from_stdin_urls_and_files_together(tmp_path: Path) -> None:
    seeds = tmp_path / "s.txt"
    seeds.write_text("https://b.example/\n")
    stdin = io.StringIO("https://a.example/\nhttps://b.example/\n")
    result = load_seeds(["-", str(seeds), "https://c.example/"], stdin=stdin)
    assert result.urls == ["https://a.example/", "https://b.example/", "https://c.example/"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["https://"], "not a valid URL"),
        (["javascript://alert(1)"], r"not an http\(s\) URL"),
        (["missing.txt"], "seed file not found"),
    ],
)
def test_bad_arguments_are_errors(args: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SeedError, match=message):
        load_seeds(args)


def test_a_file_of_only_comments_has_no_seed(tmp_path: Path) -> None:
    seeds = tmp_path / "s.txt"
    seeds.write_text("# nothing here\n\n")
    with pytest.raises(SeedError, match="no valid seed URL"):
        load_seeds([str(seeds)])


def test_undecodable_bytes_do_not_crash(tmp_path: Path) -> None:
    seeds = tmp_path / "s.txt"
    seeds.write_bytes(b"https://ok.example/\n\xff\xfe\x00garbage\n")
    result = load_seeds([str(seeds)])
    assert result.urls == ["https://ok.example/"]
    assert len(result.warnings) == 1
