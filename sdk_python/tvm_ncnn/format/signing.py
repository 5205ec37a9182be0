"""Signed model.so files (README "Trust", runtime/FORMAT.md "Signature").

model.so is native code, and its seal is a checksum anyone can recompute. A signature is not: `tvm-ncnn keygen
KEY` makes an Ed25519 key pair, `tvm-ncnn export --sign KEY` appends a signature made with KEY, and a runtime
given KEY.pub (deploy_app --trust KEY.pub, Options::trust, load(..., trust=)) refuses before dlopen a model.so
that KEY did not sign.

The keys are PEM files OpenSSL reads and writes too (PKCS#8 "PRIVATE KEY", SubjectPublicKeyInfo "PUBLIC KEY";
`openssl genpkey -algorithm ed25519 -out KEY` makes a key that works here). The crypto is the runtime's
(Monocypher's Ed25519, runtime/src/format/signature.cc), reached through its ffi: one implementation signs on the
workstation and verifies on the device. This module only reads and writes the key files.
"""
import base64
import hashlib
import os
import re
import stat

from ..runtime import native
from ..errors import ModelError, last_line

# RFC 8410: for Ed25519 the DER of either key is a fixed prefix and the 32 key bytes.
_PRIVATE_DER_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PUBLIC_DER_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def _from_pem(text: str, label: str, prefix: bytes, path: str, what: str) -> bytes:
    m = re.search(rf"-----BEGIN {label}-----(.*?)-----END {label}-----", text, re.S)
    try:
        der = base64.b64decode("".join(m.group(1).split()), validate=True) if m else b""
    except ValueError:
        der = b""
    if len(der) != len(prefix) + 32 or not der.startswith(prefix):
        raise ModelError(f"{path}: not an Ed25519 {what} (expected a PEM '{label}' file, as tvm-ncnn keygen writes)")
    return der[len(prefix):]


def _call(name: str, *args):
    try:
        return native.get_function(name)(*args)
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(last_line(err)) from None


def fingerprint(public_key: bytes) -> str:
    """How a key is named in messages, deploy_app's header and inspect: "ed25519:" and the first 8 bytes of the
    key's BLAKE2b-512 in hex (the runtime's KeyFingerprint)."""
    return "ed25519:" + hashlib.blake2b(bytes(public_key)).digest()[:8].hex()


def public_key_of(secret: bytes) -> bytes:
    return bytes(_call("tvm_ncnn.ed25519_public_key", bytes(secret)))


def keygen(path) -> str:
    """Write a new key pair: `path` (the private key, mode 0600) and `path`.pub; returns the fingerprint. Refuses
    to overwrite either file: a lost private key cannot sign models that devices trusting its .pub accept."""
    path = os.fspath(path)
    pub_path = path + ".pub"
    for p in (path, pub_path):
        if os.path.lexists(p):
            raise ModelError(f"{p} exists; not overwriting a key (remove it first, or choose another name)")
    secret = os.urandom(32)  # the OS's CSPRNG (getrandom)
    public = public_key_of(secret)
    try:
        # O_EXCL: never through a file or link someone put there since the check above; 0600 from the start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(_pem("PRIVATE KEY", _PRIVATE_DER_PREFIX + secret))
        with open(pub_path, "x") as f:
            f.write(_pem("PUBLIC KEY", _PUBLIC_DER_PREFIX + public))
    except OSError as err:
        raise ModelError(f"cannot write {err.filename or path}: {err.strerror or err}") from None
    return fingerprint(public)


def read_secret_key(path) -> bytes:
    """The 32-byte Ed25519 secret of a PEM private key file; refused when others may read it (as ssh does)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
        with open(path) as f:
            text = f.read(16384)
    except OSError as err:
        raise ModelError(f"signing key {path}: {err.strerror or err}") from None
    if "PUBLIC KEY" in text and "PRIVATE KEY" not in text:
        raise ModelError(f"signing key {path}: is a public key; sign with the private one (KEY, not KEY.pub)")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ModelError(f"signing key {path}: others may read it (mode {stat.S_IMODE(st.st_mode):04o}); "
                         f"chmod 600 {path}")
    return _from_pem(text, "PRIVATE KEY", _PRIVATE_DER_PREFIX, f"signing key {path}", "private key")


def read_public_key(path) -> bytes:
    path = os.fspath(path)
    try:
        with open(path) as f:
            text = f.read(16384)
    except OSError as err:
        raise ModelError(f"trusted key {path}: {err.strerror or err}") from None
    return _from_pem(text, "PUBLIC KEY", _PUBLIC_DER_PREFIX, f"trusted key {path}", "public key")


def sign(model_path, key_path) -> str:
    """Append to model.so the signature of the private key at key_path (replacing one already there); returns
    the key's fingerprint."""
    secret = read_secret_key(key_path)
    return str(_call("tvm_ncnn.sign_model", os.fspath(model_path), secret))


def verify(model_path, trust) -> str:
    """Check model.so's signature against the public key file `trust` (and its seal), without loading it, on any
    machine: returns the signer's fingerprint, or raises ModelError in the words Model::Load would use."""
    return str(_call("tvm_ncnn.verify_signature", os.fspath(model_path), os.fspath(trust)))
