"""Signed model.so files (README "Trust", runtime/FORMAT.md "Signature"): tvm-ncnn keygen, export --sign, and the
runtime refusing before dlopen, given a trusted public key (load(trust=), deploy_app --trust), a model.so that key
did not sign -- unsigned, signed by another key, or changed anywhere after signing. Without a trusted key a signed
model.so loads as any other. The last test runs the aarch64 bundle under qemu on a signed rpi4 model."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.format import signing
from tvm_ncnn.errors import ModelError
from tvm_ncnn.format.describe import describe

from conftest import ROOT, run_deploy_app

TVM_NCNN = ROOT / ".venv" / "bin" / "tvm-ncnn"
TRAILER = 112  # runtime/src/format/signature.cc


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TVM_NCNN), *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """Two keys made by the CLI, a tiny model exported signed (CLI) and unsigned (Python), and an input."""
    d = tmp_path_factory.mktemp("signing")
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(Tiny().eval(), str(d / "tiny.onnx"), (1, 3, 16, 16))
    for name in ("key", "other"):
        proc = cli("keygen", d / name)
        assert proc.returncode == 0, proc.stderr
    proc = cli("export", onnx_path, "-o", d / "signed.so", "--sign", d / "key")
    assert proc.returncode == 0, proc.stderr
    fingerprint = signing.fingerprint(signing.read_public_key(d / "key.pub"))
    assert f"signed by {fingerprint}" in proc.stdout
    tvm_ncnn.export(onnx_path, str(d / "plain.so"))
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(d / "x.npy", x)
    return {"dir": d, "onnx": onnx_path, "x": x, "fingerprint": fingerprint,
            "key": d / "key", "pub": d / "key.pub", "other": d / "other.pub"}


def refused(model_so, trust) -> str:
    """The one-line reason load(trust=) and deploy_app --trust both give; they must agree."""
    with pytest.raises(ModelError) as err:
        tvm_ncnn.load(model_so, trust=trust)
    message = str(err.value)
    assert "\n" not in message
    x = Path(str(trust)).parent / "x.npy"  # work's input, beside its keys
    proc = run_deploy_app(str(model_so), str(x), "--trust", str(trust), check=False)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines() == [f"deploy_app: error: {message}"]
    return message


# ---- keys


def test_import_tvm_ncnn_is_enough_for_signing_verify(work):
    """README "Trust": `tvm_ncnn.signing.verify(path, "KEY.pub")` after a bare `import tvm_ncnn`, in a fresh
    interpreter (this process imported tvm_ncnn.format.signing already, which would hide a missing mapping)."""
    code = ("import sys, tvm_ncnn; print(tvm_ncnn.signing.verify(sys.argv[1], sys.argv[2]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "sdk_python")}
    proc = subprocess.run([sys.executable, "-c", code, str(work["dir"] / "signed.so"), str(work["pub"])],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == work["fingerprint"]



def test_keygen_writes_a_private_key_only_its_owner_reads(work):
    key, pub = work["key"], work["pub"]
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in key.read_text() and "BEGIN PUBLIC KEY" in pub.read_text()
    assert signing.public_key_of(signing.read_secret_key(key)) == signing.read_public_key(pub)
    again = cli("keygen", key)  # never overwrites a key
    assert again.returncode == 1 and again.stderr.strip() == f"tvm-ncnn: error: {key} exists; not overwriting a " \
        "key (remove it first, or choose another name)"


def test_a_private_key_others_can_read_is_refused_before_export(work, tmp_path):
    loose = tmp_path / "loose"
    shutil.copy(work["key"], loose)
    os.chmod(loose, 0o644)
    proc = cli("export", work["onnx"], "-o", tmp_path / "m.so", "--sign", loose)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"tvm-ncnn: error: signing key {loose}: others may read it (mode 0644); " \
                                  f"chmod 600 {loose}"
    assert not (tmp_path / "m.so").exists()


def test_keys_and_signatures_are_standard_ed25519(work, tmp_path):
    """OpenSSL reads the keys and verifies the signature over the message FORMAT.md defines: RFC 8032 Ed25519,
    not a look-alike (skipped where the openssl command is not installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command")
    derived = subprocess.run([openssl, "pkey", "-in", work["key"], "-pubout"], capture_output=True, text=True)
    assert derived.stdout == work["pub"].read_text()
    data = (work["dir"] / "signed.so").read_bytes()
    body, trailer = data[:-TRAILER], data[-TRAILER:]
    assert trailer[:8] == b"TVMNCSIG" and struct.unpack("<Q", trailer[8:16])[0] == len(body)
    (tmp_path / "message").write_bytes(b"TVMNCSIG" + struct.pack("<Q", len(body)) + hashlib.blake2b(body).digest())
    (tmp_path / "sig").write_bytes(trailer[48:])
    proc = subprocess.run([openssl, "pkeyutl", "-verify", "-pubin", "-inkey", work["pub"], "-rawin", "-in",
                           tmp_path / "message", "-sigfile", tmp_path / "sig"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- loading


def test_good_signature_loads_in_python_and_deploy_app(work):
    signed, plain = work["dir"] / "signed.so", work["dir"] / "plain.so"
    model = tvm_ncnn.load(signed, trust=work["pub"])
    assert model.signer == work["fingerprint"]
    np.testing.assert_array_equal(model.single(work["x"]), tvm_ncnn.load(plain).single(work["x"]))
    assert signing.verify(signed, work["pub"]) == work["fingerprint"]

    x = str(work["dir"] / "x.npy")
    text = run_deploy_app(str(signed), x, "--trust", str(work["pub"]), "--repeat", "1").stdout
    assert f"\nsigned by {work['fingerprint']} (--trust)\n" in text
    report = json.loads(run_deploy_app(str(signed), x, "--trust", str(work["pub"]), "--json", "--repeat", "1").stdout)
    assert report["signer"] == work["fingerprint"]


def test_signed_without_trust_loads_as_before(work):
    signed = work["dir"] / "signed.so"
    assert tvm_ncnn.load(signed).signer == ""
    text = run_deploy_app(str(signed), str(work["dir"] / "x.npy"), "--repeat", "1").stdout
    assert "signed by" not in text
    info = describe(signed)["file"]
    assert info["sealed"] and info["signed_by"] == work["fingerprint"]


def test_unsigned_with_trust_is_refused(work):
    message = refused(work["dir"] / "plain.so", work["pub"])
    assert message == (f"model '{work['dir'] / 'plain.so'}': not signed, and only models signed by "
                       f"{work['fingerprint']} are trusted; sign it at export (tvm-ncnn export --sign KEY)")


def test_wrong_key_is_refused(work):
    other = signing.fingerprint(signing.read_public_key(work["other"]))
    message = refused(work["dir"] / "signed.so", work["other"])
    assert message.endswith(f"signed by {work['fingerprint']}, not by the trusted {other}; refusing it")


@pytest.mark.parametrize("where", ["elf-header", "code", "middle", "seal", "trailer-length", "trailer-key",
                                   "signature"])
def test_a_flipped_byte_anywhere_is_refused(work, tmp_path, where):
    data = bytearray((work["dir"] / "signed.so").read_bytes())
    n = len(data)
    at = {"elf-header": 18, "code": 0x1000, "middle": n // 2, "seal": n - TRAILER - 4,
          "trailer-length": n - TRAILER + 8, "trailer-key": n - TRAILER + 20, "signature": n - 10}[where]
    data[at] ^= 0x01
    model_so = tmp_path / "flipped.so"
    model_so.write_bytes(bytes(data))
    message = refused(model_so, work["pub"])
    expected = {"trailer-length": "corrupt: its signature covers", "trailer-key": "not by the trusted"}
    assert expected.get(where, "bad signature: the file changed after it was signed") in message


def test_signing_again_replaces_the_signature(work, tmp_path):
    model_so = tmp_path / "m.so"
    shutil.copy(work["dir"] / "signed.so", model_so)
    other_key = work["dir"] / "other"
    assert signing.sign(model_so, other_key) == signing.fingerprint(signing.read_public_key(work["other"]))
    assert model_so.stat().st_size == (work["dir"] / "signed.so").stat().st_size
    assert tvm_ncnn.load(model_so, trust=work["other"]).signer
    refused(model_so, work["pub"])


# ---- the aarch64 bundle under qemu


def test_signed_rpi4_model_under_qemu(work, tmp_path):
    if os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1":
        pytest.skip("TVM_NCNN_SKIP_AARCH64=1")
    qemu = shutil.which("qemu-aarch64")
    tarball = Path(os.environ.get("TVM_NCNN_AARCH64_BUILD_DIR", ROOT / "build" / "aarch64")) / "tvm-ncnn-aarch64.tar.gz"
    assert qemu and tarball.exists(), "needs qemu-user and bash cmake/build_aarch64.sh"
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    app = tmp_path / "tvm-ncnn-aarch64" / "deploy_app"
    model_so = tmp_path / "rpi4.so"
    result = tvm_ncnn.export(work["onnx"], str(model_so), target="rpi4", precision="fp32", sign=work["key"])
    assert result.signer == work["fingerprint"]
    assert signing.verify(model_so, work["pub"]) == work["fingerprint"]  # on x86, without loading

    def run(*args):
        return subprocess.run([qemu, "-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a72", str(app), str(model_so),
                               str(work["dir"] / "x.npy"), "--repeat", "1", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    good = run("--trust", work["pub"], "--output", tmp_path / "y.npy")
    assert good.returncode == 0, good.stderr
    assert f"\nsigned by {work['fingerprint']} (--trust)\n" in good.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), tvm_ncnn.load(work["dir"] / "plain.so").single(work["x"]),
                               rtol=1e-4, atol=1e-5)
    wrong = run("--trust", work["other"])
    assert wrong.returncode == 1 and "not by the trusted" in wrong.stderr
    data = bytearray(model_so.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_so.write_bytes(bytes(data))
    flipped = run("--trust", work["pub"])
    assert flipped.returncode == 1 and "bad signature" in flipped.stderr, flipped.stderr
