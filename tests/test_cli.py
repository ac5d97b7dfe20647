"""The command line's contract: exit codes, --version, closed pipes and Ctrl-C end cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import hpcai
from hpcai.cli import EXIT_CLOSED_PIPE, EXIT_INTERRUPTED, main


def _hpcai() -> list[str]:
    exe = shutil.which("hpcai", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "hpcai.cli"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"hpcai {hpcai.__version__}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`hpcai devices --json | head`: the reader is gone before we write; no traceback."""
    r, w = os.pipe()
    proc = subprocess.Popen([*_hpcai(), "devices", "--json"], stdout=w, stderr=subprocess.PIPE, cwd=tmp_path)
    os.close(w)
    os.close(r)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=120) == EXIT_CLOSED_PIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_ends_with_one_line(tmp_path: Path) -> None:
    """SIGINT while a command runs: exit 130 and one line, no traceback. The command is made
    to wait (deterministically) until the signal arrives."""
    code = (
        "import signal, sys, time\n"
        # Ctrl-C as in a terminal, also when the tests run as a background job (SIGINT ignored)
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import hpcai._cli_devices as d\n"
        "from hpcai.cli import main\n"
        "d.run = lambda args: (print('ready', flush=True), time.sleep(120))\n"
        "sys.exit(main(['devices']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"  # the command is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED
    assert err.decode().strip().splitlines()[-1] == "hpcai: interrupted"
    assert "Traceback" not in err.decode()
