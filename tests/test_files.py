"""A file written whole is there whole or not at all, readable like any other."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tutelage.files import write_bytes_whole, write_text_whole, write_whole


def test_a_failed_write_leaves_the_previous_file_and_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_text_whole(target, '{"loss": 0.5}\n')

    def half_then_fail(partial: Path) -> None:
        partial.write_text('{"loss": 0.', encoding="utf-8")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_whole(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == '{"loss": 0.5}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    assert target.stat().st_mode & 0o777 == 0o644  # readers (a web server, a colleague) can


def test_writers_at_once_never_leave_a_mixed_file(tmp_path: Path) -> None:
    target = tmp_path / "chart.png"
    contents = [bytes([n]) * 200_000 for n in range(8)]
    threads = [threading.Thread(target=write_bytes_whole, args=(target, c)) for c in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]
