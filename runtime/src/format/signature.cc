// The signature trailer of a model.so (runtime/FORMAT.md, "Signature"): 112 bytes after the seal --
//
//   8 bytes  magic "TVMNCSIG"
//   u64      L, the length of the file before the trailer
//   32 bytes the signer's Ed25519 public key (to name it; verification uses the trusted key, never this one)
//   64 bytes Ed25519 signature (RFC 8032) of M = "TVMNCSIG" || u64 L || BLAKE2b-512(the L bytes)
//
// Signing a digest instead of the whole file (as minisign does) keeps the signed message small; BLAKE2b is
// Monocypher's fastest hash, and collision resistance is all the construction needs of it. The trailer sits after
// the seal so signing is an append to a finished file, and a signature covers the seal too.
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "format/byte_io.h"
#include "format/seal.h"
#include "format/signature.h"
#include "internal.h"
#include "monocypher-ed25519.h"
#include "monocypher.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

constexpr char kMagic[8] = {'T', 'V', 'M', 'N', 'C', 'S', 'I', 'G'};
constexpr int64_t kTrailerSize = 8 + 8 + 32 + 64;

struct Trailer {
  uint64_t covered = 0;
  Ed25519PublicKey key{};
  uint8_t signature[64] = {};
};

uint64_t GetLE64(const uint8_t* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

// The trailer at the end of the file, if it ends with one; throws when its length field does not fit the file.
bool ReadTrailer(const std::string& path, int64_t size, const std::string& name, Trailer* t) {
  if (size < kTrailerSize) return false;
  uint8_t buf[kTrailerSize];
  std::ifstream f(path, std::ios::binary);
  f.seekg(size - kTrailerSize);
  if (!f.read(reinterpret_cast<char*>(buf), kTrailerSize)) throw Error(name + ": cannot read the file");
  if (std::memcmp(buf, kMagic, sizeof(kMagic)) != 0) return false;
  t->covered = GetLE64(buf + 8);
  std::memcpy(t->key.data(), buf + 16, 32);
  std::memcpy(t->signature, buf + 48, 64);
  if (t->covered != static_cast<uint64_t>(size - kTrailerSize)) {
    throw Error(name + ": corrupt: its signature covers " + std::to_string(t->covered) + " bytes, the file has " +
                std::to_string(size - kTrailerSize) + " before it; copy it again or re-export it");
  }
  return true;
}

// The message the signature is over (see the top of this file), from the first `length` bytes of the file.
std::string SignedMessage(const std::string& path, uint64_t length, const std::string& name) {
  crypto_blake2b_ctx ctx;
  crypto_blake2b_init(&ctx);
  std::ifstream f(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  for (uint64_t left = length; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    if (!f.read(buf.data(), static_cast<std::streamsize>(n))) throw Error(name + ": read error while checking it");
    crypto_blake2b_update(&ctx, reinterpret_cast<const uint8_t*>(buf.data()), n);
    left -= n;
  }
  uint8_t digest[64];
  crypto_blake2b_final(&ctx, digest);
  detail::ByteWriter w;
  w.Raw(kMagic, sizeof(kMagic));
  w.U64(length);
  w.Raw(reinterpret_cast<const char*>(digest), sizeof(digest));
  return w.Take();
}

}  // namespace

SignatureCheck CheckSignature(const std::string& path, int64_t size, const std::string& trust_key_path) {
  const std::string name = "model '" + path + "'";
  SignatureCheck out;
  Trailer t;
  const bool signed_file = ReadTrailer(path, size, name, &t);
  out.content_size = signed_file ? static_cast<int64_t>(t.covered) : size;
  if (trust_key_path.empty()) return out;

  const Ed25519PublicKey trusted = ReadPublicKeyFile(trust_key_path);
  const std::string fingerprint = KeyFingerprint(trusted);
  if (!signed_file) {
    throw Error(name + ": not signed, and only models signed by " + fingerprint + " are trusted; sign it at export "
                "(tvm-ncnn export --sign KEY)");
  }
  if (std::memcmp(t.key.data(), trusted.data(), trusted.size()) != 0) {
    throw Error(name + ": signed by " + KeyFingerprint(t.key) + ", not by the trusted " + fingerprint +
                "; refusing it");
  }
  const std::string message = SignedMessage(path, t.covered, name);
  if (crypto_ed25519_check(t.signature, trusted.data(), reinterpret_cast<const uint8_t*>(message.data()),
                           message.size()) != 0) {
    throw Error(name + ": bad signature: the file changed after it was signed by " + fingerprint +
                " (modified or corrupt); refusing it");
  }
  out.signer = fingerprint;
  return out;
}

Ed25519PublicKey PublicKeyOf(const Ed25519Seed& seed) {
  Ed25519PublicKey key;
  crypto_ed25519_public_key(key.data(), seed.data());
  return key;
}

std::string SignModel(const std::string& path, const Ed25519Seed& seed) {
  const std::string name = "model '" + path + "'";
  int64_t size = CheckReadableFile(path, "model");
  Trailer old;
  if (ReadTrailer(path, size, name, &old)) {
    size = static_cast<int64_t>(old.covered);  // re-signing replaces the signature
    VerifySeal(path, size, CheckElf(path, size, /*for_this_machine=*/false));
  } else {
    SealModel(path);  // a no-op on a sealed file; the signature then covers the seal
    size = CheckReadableFile(path, "model");
  }
  const std::string message = SignedMessage(path, static_cast<uint64_t>(size), name);
  const Ed25519PublicKey key = PublicKeyOf(seed);
  uint8_t signature[64];
  // The public key is passed, not recomputed: it was derived from this seed just above (Monocypher 3's
  // crypto_ed25519_sign leaks the secret when given a key that does not belong to it).
  crypto_ed25519_sign(signature, seed.data(), key.data(), reinterpret_cast<const uint8_t*>(message.data()),
                      message.size());

  detail::ByteWriter w;
  w.Raw(kMagic, sizeof(kMagic));
  w.U64(static_cast<uint64_t>(size));
  w.Raw(reinterpret_cast<const char*>(key.data()), key.size());
  w.Raw(reinterpret_cast<const char*>(signature), sizeof(signature));
  const std::string trailer = w.Take();
  if (::truncate(path.c_str(), size) != 0) throw Error(name + ": cannot sign it (" + std::strerror(errno) + ")");
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(trailer.data(), static_cast<std::streamsize>(trailer.size()));
  out.close();
  if (!out) throw Error(name + ": cannot append the signature (" + std::strerror(errno) + ")");
  return KeyFingerprint(key);
}

}  // namespace tvm_ncnn

namespace {

tvm_ncnn::Ed25519Seed SeedFromBytes(const tvm::ffi::Bytes& b) {
  if (b.size() != 32) throw tvm_ncnn::Error("an Ed25519 secret key is 32 bytes, got " + std::to_string(b.size()));
  tvm_ncnn::Ed25519Seed seed;
  std::memcpy(seed.data(), b.data(), seed.size());
  return seed;
}

}  // namespace

// For the SDK (sdk_python/tvm_ncnn/format/signing.py): it reads and writes the key files, the runtime does the crypto.
TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  using tvm::ffi::Bytes;
  using tvm::ffi::String;
  refl::GlobalDef()
      .def("tvm_ncnn.sign_model",
           [](const String& path, const Bytes& secret) -> String {
             try {
               tvm_ncnn::Ed25519Seed seed = SeedFromBytes(secret);
               const std::string fingerprint = tvm_ncnn::SignModel(std::string(path), seed);
               crypto_wipe(seed.data(), seed.size());
               return fingerprint;
             } catch (const tvm_ncnn::Error& e) {
               TVM_FFI_THROW(RuntimeError) << e.what();
             }
           })
      .def("tvm_ncnn.ed25519_public_key",
           [](const Bytes& secret) -> Bytes {
             try {
               tvm_ncnn::Ed25519Seed seed = SeedFromBytes(secret);
               const tvm_ncnn::Ed25519PublicKey key = tvm_ncnn::PublicKeyOf(seed);
               crypto_wipe(seed.data(), seed.size());
               return Bytes(reinterpret_cast<const char*>(key.data()), key.size());
             } catch (const tvm_ncnn::Error& e) {
               TVM_FFI_THROW(RuntimeError) << e.what();
             }
           })
      // Checks signature and seal as Model::Load does, on any machine, without loading: returns the signer's fingerprint ("" with no trust key).
      .def("tvm_ncnn.verify_signature", [](const String& path, const String& trust) -> String {
        try {
          const std::string p(path);
          const tvm_ncnn::SignatureCheck c =
              tvm_ncnn::CheckSignature(p, tvm_ncnn::CheckReadableFile(p, "model"), std::string(trust));
          tvm_ncnn::VerifySeal(p, c.content_size, tvm_ncnn::CheckElf(p, c.content_size, false));
          return c.signer;
        } catch (const tvm_ncnn::Error& e) {
          TVM_FFI_THROW(RuntimeError) << e.what();
        }
      });
}
