"""The smoke workflow on a real single-node SLURM (Debian's slurm-wlm and munge, started here)
through snakemake-executor-plugin-slurm and profiles/slurm: results equal the local run's."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CONF = Path("/etc/slurm/slurm.conf")  # the plugin drops SLURM_CONF before its inner srun
MARK = "# written by the mhd test suite"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, **kw)


# Standing SLURM up installs system packages and starts daemons: only where asked (MHD_TEST_SLURM=1)
# and in CI (CI=true, as CI services set it), never on a user's machine by a plain `make test`.
ASKED = os.environ.get("MHD_TEST_SLURM") == "1" or os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def slurm():
    if not ASKED:
        pytest.skip("the SLURM test installs slurm-wlm and munge and starts their daemons: "
                    "set MHD_TEST_SLURM=1 to run it (CI=true runs it too)")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("standing up SLURM needs root and apt-get")
    if CONF.exists() and MARK not in CONF.read_text():
        pytest.skip(f"{CONF} belongs to a real SLURM installation; not touching it")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (it is in requirements/lock.txt)")
    if not shutil.which("slurmctld") or not shutil.which("munged"):
        res = sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge",
                 timeout=600)
        if res.returncode:
            pytest.skip(f"could not install slurm-wlm and munge: {res.stderr[-300:]}")
    host = socket.gethostname().split(".")[0]
    for d in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd"):
        os.makedirs(d, exist_ok=True)
    CONF.write_text(f"""{MARK}
ClusterName=mhdtest
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
ReturnToService=2
NodeName={host} CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    started = []
    if sh("munge -n | unmunge").returncode:
        sh("install -d -o munge -g munge /run/munge && runuser -u munge -- /usr/sbin/munged")
    for daemon in ("slurmctld", "slurmd"):
        if sh(f"pgrep -x {daemon}").returncode:
            started.append(subprocess.Popen([f"/usr/sbin/{daemon}", "-D"], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
    deadline = time.time() + 60
    while time.time() < deadline and "idle" not in sh("sinfo -h -o %T").stdout:
        time.sleep(1)
    if "idle" not in sh("sinfo -h -o %T").stdout:
        for p in started:
            p.kill()
        CONF.unlink()
        pytest.skip(f"SLURM did not reach an idle node in 60 s: {sh('sinfo').stdout} {sh('sinfo').stderr}")
    yield host
    sh("scancel --user=root")
    for p in started:
        p.kill()
        p.wait()
    # while a slurm.conf points at a controller that is gone, every later snakemake waits ~10 s on it
    CONF.unlink()


def test_smoke_workflow_through_slurm_equals_the_local_run(slurm, repo, tiny_idx, tmp_path):
    from test_workflow import snakemake, tiny_overlay

    configs = [repo / "config" / "smoke.yaml", tiny_overlay(tmp_path, tiny_idx)]
    local = snakemake(repo, tmp_path / "local", "all_runs", configfiles=configs)
    assert local.returncode == 0, local.stderr[-2000:]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["timeout", "-k", "10", "420", sys.executable, "-m", "snakemake", "all_runs",
           "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path / "slurm"),
           "--profile", str(repo / "profiles" / "slurm"), "--jobs", "4",
           # this test cluster: no accounting database, one small node
           "--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "1",
           "--set-resources", "train:mem_mb=1000", "train:cpus_per_task=1", "--set-threads", "train=1",
           "--default-resources", "mem_mb=500", "runtime=10", "--configfile", *map(str, configs)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "submitted with SLURM jobid" in res.stdout + res.stderr
    runs = sorted(p.name for p in (tmp_path / "slurm" / "results" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        a = (tmp_path / "slurm" / "results" / "runs" / run / "metrics.csv").read_bytes()
        b = (tmp_path / "local" / "results" / "runs" / run / "metrics.csv").read_bytes()
        assert a == b, f"{run}: SLURM and local metrics differ"
