// Signed model.so files (runtime/FORMAT.md, "Signature"; README "Trust"). The seal is a checksum: anyone can
// recompute it after changing the file. A signature is an Ed25519 signature (Monocypher, cmake/monocypher.cmake)
// over every byte before it, appended after the seal by `tvm-ncnn export --sign KEY`; a runtime given the signer's
// public key refuses, before dlopen, a model.so that is unsigned or not signed by that key.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace tvm_ncnn {

using Ed25519PublicKey = std::array<uint8_t, 32>;
using Ed25519Seed = std::array<uint8_t, 32>;  // the secret key (RFC 8032's 32-byte private key)

struct SignatureCheck {
  int64_t content_size = 0;  // the file's length before its signature (the ELF image and the seal)
  std::string signer;        // fingerprint of the trusted key that verified it; "" when none was asked for
};

// Before dlopen. trust_key_path "": the signature, if any, is not verified (the file loads as an unsigned one
// does), only set aside. Otherwise the public key file (PEM, tvm-ncnn keygen's KEY.pub or OpenSSL's) must have
// signed the file. Throws Error in one line otherwise.
SignatureCheck CheckSignature(const std::string& path, int64_t size, const std::string& trust_key_path);

// Appends the signature of `seed`'s key to a model.so (sealing it first when it has no seal); a signature already
// there is replaced. Returns the key's fingerprint.
std::string SignModel(const std::string& path, const Ed25519Seed& seed);

Ed25519PublicKey PublicKeyOf(const Ed25519Seed& seed);
Ed25519PublicKey ReadPublicKeyFile(const std::string& path);
// "ed25519:" and 16 hex digits: the first 8 bytes of the key's BLAKE2b-512, what deploy_app and inspect show.
std::string KeyFingerprint(const Ed25519PublicKey& key);

}  // namespace tvm_ncnn
