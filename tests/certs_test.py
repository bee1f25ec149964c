"""``toolrun cluster certs``: a CA, the daemon's and each worker's certificates, laid out for
copying; added to later with the same CA; every file checked before a cluster starts with it.
(A TLS cluster joined, and refused, for real: cluster_test.)"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import Toolrun
from cryptography import x509

from toolrun.cluster.certs import daemon_certs, make_certs, worker_certs
from toolrun.errors import ConfigError, UsageError


def test_the_folder_holds_what_each_machine_needs(tmp_path: Path, toolrun: Toolrun) -> None:
    out = tmp_path / "certs"
    made = toolrun("cluster", "certs", str(out), "--worker", "build-3", "--host", "10.0.0.5")
    assert made.returncode == 0, made.stderr
    assert f"keep {out / 'ca.key'} to yourself" in made.stdout
    assert sorted(p.name for p in (out / "daemon").iterdir()) == [
        "ca.crt",
        "client.crt",
        "client.key",
        "scheduler.crt",
        "scheduler.key",
    ]
    certs = worker_certs(out / "workers" / "build-3")
    daemon = daemon_certs(out / "daemon")
    for key in (out / "ca.key", certs.key, daemon.client_key, daemon.scheduler_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    scheduler = x509.load_pem_x509_certificate(daemon.scheduler_cert.read_bytes())
    names = scheduler.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    worker = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    assert worker.subject.rfc4514_string() == "CN=build-3"

    # Later: one more worker, signed by the same CA; the daemon's folder is left alone.
    before = daemon.client_cert.read_bytes()
    assert toolrun("cluster", "certs", str(out), "--worker", "build-4").returncode == 0
    assert daemon.client_cert.read_bytes() == before
    later = x509.load_pem_x509_certificate(
        (out / "workers" / "build-4" / "worker.crt").read_bytes()
    )
    later.verify_directly_issued_by(x509.load_pem_x509_certificate((out / "ca.crt").read_bytes()))
    again = toolrun("cluster", "certs", str(out), "--worker", "build-3")
    assert again.returncode == 2 and "build-3 exists already" in again.stderr


@pytest.mark.parametrize(
    ("workers", "days", "says"),
    [
        (["../up"], 30, "--worker '../up'"),
        (["a", "a"], 30, "given twice"),
        (["a"], 0, "--days must be from 1"),
    ],
)
def test_bad_arguments_are_refused(
    tmp_path: Path, workers: list[str], days: int, says: str
) -> None:
    with pytest.raises(UsageError) as refused:
        make_certs(tmp_path / "out", workers=workers, hosts=[], days=days)
    assert says in refused.value.message
    assert not (tmp_path / "out").exists()


def test_damaged_or_mismatched_files_are_named(tmp_path: Path) -> None:
    make_certs(tmp_path / "one", workers=["w"], hosts=[], days=30)
    make_certs(tmp_path / "two", workers=["w"], hosts=[], days=30)
    folder = tmp_path / "one" / "workers" / "w"
    (folder / "worker.key").write_bytes(
        (tmp_path / "two" / "workers" / "w" / "worker.key").read_bytes()
    )
    with pytest.raises(ConfigError) as wrong_key:
        worker_certs(folder)
    assert "worker.key is not the key of" in wrong_key.value.message
    (folder / "worker.crt").write_text("not a certificate")
    with pytest.raises(ConfigError) as damaged:
        worker_certs(folder)
    assert "is not PEM" in damaged.value.message
    (folder / "ca.crt").unlink()
    with pytest.raises(ConfigError) as missing:
        worker_certs(folder)
    assert "--certs: cannot read" in missing.value.message and "ca.crt" in missing.value.message
    (tmp_path / "two" / "ca.key").write_text("junk")
    with pytest.raises(ConfigError) as junk:
        make_certs(tmp_path / "two", workers=["x"], hosts=[], days=30)
    assert "is not PEM" in junk.value.message


def test_the_daemon_and_worker_refuse_tls_without_certificates(
    tmp_path: Path, toolrun: Toolrun
) -> None:
    make_certs(tmp_path / "c", workers=["w"], hosts=[], days=30)
    daemon = toolrun("daemon", "--cluster", "tls://127.0.0.1:1", "-p", "0")
    assert daemon.returncode == 2 and "tls:// needs --cluster-certs DIR" in daemon.stderr
    plain = toolrun(
        "daemon",
        "--cluster",
        "tcp://127.0.0.1:1",
        "--cluster-certs",
        str(tmp_path / "c" / "daemon"),
    )
    assert plain.returncode == 2 and "--cluster-certs is for tls://" in plain.stderr
    worker_folder = tmp_path / "c" / "workers" / "w"
    wrong_folder = toolrun("daemon", "--cluster", "--cluster-certs", str(worker_folder), "-p", "0")
    assert wrong_folder.returncode == 3 and "scheduler.crt" in wrong_folder.stderr
    alone = toolrun("daemon", "--cluster-certs", str(tmp_path / "c" / "daemon"), "-p", "0")
    assert alone.returncode == 2 and "go with --cluster" in alone.stderr
    worker = toolrun("worker", "tcp://127.0.0.1:1", "--certs", str(worker_folder))
    assert worker.returncode == 2 and "--certs is for tls://" in worker.stderr
    far = toolrun("worker", "tcp://192.0.2.1:8786")
    assert far.returncode == 2 and "refusing plain tcp://" in far.stderr
