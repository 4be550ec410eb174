"""The replay tool: same trades from a command log with either book; bad files refused."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from matching.replay import main

REPO = Path(__file__).resolve().parents[2]

COMMANDS = """\
action,order_id,owner,side,price,qty,tif
limit,1,10,sell,101,5,GTC
limit,2,11,sell,100,3,GTC
limit,3,12,buy,99,4,POST_ONLY
limit,4,13,buy,101,6,IOC
market,5,14,buy,,4,IOC
limit,6,15,sell,99,5,FOK
cancel,3,,,,,
limit,7,16,buy,98,2,GTC
limit,8,10,buy,102,9,GTC
"""

TRADES = """\
seq,taker_order_id,maker_order_id,price,qty
1,4,2,100,3
2,4,1,101,3
3,5,1,101,2
"""

BOOK = """\
side,price,order_id,qty
buy,102,8,9
buy,98,7,2
"""


def run(tmp_path, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "commands.csv"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = main(["replay", str(path), *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("flags", [[], ["--reference"]], ids=["numba", "reference"])
def test_replay_prints_trades_in_order(tmp_path, flags):
    # 4 (IOC) takes 100 before 101; market 5 takes the rest of 1; FOK 6 needs 5 lots
    # but only 4 bid at 99, so it is rejected; 3 is cancelled; 7 and 8 rest.
    assert run(tmp_path, COMMANDS, *flags) == (0, TRADES, "")


@pytest.mark.parametrize("flags", [[], ["--reference"]], ids=["numba", "reference"])
def test_replay_prints_final_book(tmp_path, flags):
    assert run(tmp_path, COMMANDS, "--book", *flags) == (0, BOOK, "")


@pytest.mark.parametrize(
    ("line", "bad", "message"),
    [
        (3, "limit,2,11,sideways,100,3,GTC", "line 3: side must be buy or sell"),
        (4, "limit,3,12,buy,ninety,4,GTC", "line 4: price must be an integer"),
        (5, "market,5,14,buy,100,4,IOC", "line 5: price must be empty for market"),
        (2, "limit,1,10,sell,101,5,GTX", "line 2: tif must be GTC, IOC, FOK or POST_ONLY"),
        (6, "limit,6,15,sell,99,1", "line 6: expected 7 fields, got 6"),
        (7, "amend,3,,,,,", "line 7: action must be limit, market or cancel"),
    ],
)
def test_malformed_line_is_named_and_nothing_is_written(tmp_path, line, bad, message):
    rows = COMMANDS.splitlines()
    rows[line - 1] = bad
    code, out, err = run(tmp_path, "\n".join(rows) + "\n")
    assert code != 0
    assert out == ""
    assert message in err


def test_wrong_header_is_rejected(tmp_path):
    code, out, err = run(tmp_path, COMMANDS.replace("tif", "time_in_force", 1))
    assert (code, out) == (2, "")
    assert "line 1: header must be" in err


def test_command_line_entry_point(tmp_path):
    path = tmp_path / "commands.csv"
    path.write_text(COMMANDS)
    done = subprocess.run(
        [sys.executable, "-m", "matching", "replay", str(path)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, TRADES)
    path.write_text(COMMANDS + "limit,9,1,buy,-5,1,GTC\n")
    done = subprocess.run(
        [sys.executable, "-m", "matching", "replay", str(path)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and done.stdout == ""
    assert "line 11: price must be >= 1" in done.stderr
