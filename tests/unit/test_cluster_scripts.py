"""The cluster scripts' daemon start (hack/cluster-lib.sh `detach`, used for dockerd and
every cluster component): a daemon keeps no file descriptor of the shell that started it.
Before, only fd 9 was closed, and a dockerd started under `flock FILE CMD` (the lock on fd
3) held that lock for as long as it ran: every later `flock FILE` waited forever."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support import wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]


def test_a_detached_daemon_inherits_no_lock_and_runs_in_its_own_session(tmp_path):
    lock = tmp_path / "images.lock"
    script = f'''
        source hack/cluster-lib.sh
        exec 3>"{lock}" 7>"{lock}.other"
        flock 3
        (detach sleep 30) </dev/null >/dev/null 2>&1 &
        echo $!
    '''
    pid = int(subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()[-1])
    try:
        fds = wait_for(lambda: sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
                       if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep") else None, 10, what="the daemon started")
        assert fds == [0, 1, 2]
        assert os.getsid(pid) == pid
        # The starter is gone: the lock is free for the next caller at once.
        taken = subprocess.run(["flock", "-n", str(lock), "true"])
        assert taken.returncode == 0
    finally:
        os.kill(pid, 9)


def test_the_first_kind_node_image_on_a_machine_is_not_an_error():
    """hack/kind-build.sh, after building a node image, removes the older ones; with none
    (a machine's first build) its pipeline's grep found nothing and, under pipefail, failed
    the whole build after the image was made (the kind tests errored on a fresh machine)."""
    script = '''
        source hack/kind-build.sh
        set -euo pipefail
        docker() { [[ $1 == image ]] && echo "$KIND_NODE_REPO:current"; return 0; }
        remove_old_node_images "$KIND_NODE_REPO:current"
        echo removed-none
    '''
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split()[-1] == "removed-none", done.stderr
