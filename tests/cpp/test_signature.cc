// Signed model.so (runtime/src/format/signature.cc): the Ed25519 built in is RFC 8032's (test vector 1), a signed
// file verifies with its key and with no other, and Model::Load with Options::trust refuses before dlopen an
// unsigned file, one signed by another key, and one changed after signing. Any ELF shared library stands in for
// a model.so: every refusal here happens before the file is loaded.
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "check.h"

namespace ffi = tvm::ffi;

namespace {

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string Base64(const std::string& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<uint8_t>(bytes[i + k]) : 0);
    for (size_t k = 0; k < 4; ++k) out.push_back(k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=');
  }
  return out;
}

// A public key file as tvm-ncnn keygen writes it (PEM SubjectPublicKeyInfo).
void WritePublicKey(const std::string& path, const std::string& key) {
  WriteFile(path, "-----BEGIN PUBLIC KEY-----\n" + Base64(Unhex("302a300506032b6570032100") + key) +
                      "\n-----END PUBLIC KEY-----\n");
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

int main() {
  (void)tvm_ncnn::DetectThreads();  // keeps the runtime library linked: its static init registers the functions
  auto public_key = ffi::Function::GetGlobal("tvm_ncnn.ed25519_public_key");
  auto sign = ffi::Function::GetGlobal("tvm_ncnn.sign_model");
  auto verify = ffi::Function::GetGlobal("tvm_ncnn.verify_signature");
  CHECK(public_key.has_value() && sign.has_value() && verify.has_value());

  // RFC 8032, 7.1, test 1.
  const std::string secret = Unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  const std::string pub = (*public_key)(ffi::Bytes(secret)).cast<ffi::Bytes>();
  CHECK(pub == Unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
  const std::string other_secret(32, '\x07');
  const std::string other_pub = (*public_key)(ffi::Bytes(other_secret)).cast<ffi::Bytes>();

  const std::string dir = TempDir();
  const char* build = std::getenv("TVM_NCNN_BUILD_DIR");
  const std::string library = std::string(build ? build : ".") + "/lib/libtvm_ncnn_runtime.so";
  const std::string plain = dir + "/plain.so", signed_so = dir + "/signed.so", flipped = dir + "/flipped.so";
  std::filesystem::copy_file(library, plain);
  std::filesystem::copy_file(library, signed_so);
  WritePublicKey(dir + "/key.pub", pub);
  WritePublicKey(dir + "/other.pub", other_pub);

  const std::string fingerprint = (*sign)(ffi::String(signed_so), ffi::Bytes(secret)).cast<ffi::String>();
  CHECK(fingerprint.rfind("ed25519:", 0) == 0 && fingerprint.size() == 8 + 16);
  CHECK(std::string((*verify)(ffi::String(signed_so), ffi::String(dir + "/key.pub")).cast<ffi::String>()) ==
        fingerprint);
  CHECK(std::string((*verify)(ffi::String(signed_so), ffi::String("")).cast<ffi::String>()).empty());
  try {
    (*verify)(ffi::String(signed_so), ffi::String(dir + "/other.pub"));
    CHECK(!"verify_signature with another key did not throw");
  } catch (const ffi::Error& e) {
    CHECK(e.message().find("not by the trusted") != std::string::npos);
  }

  std::string bytes = ReadFile(signed_so);
  bytes[bytes.size() / 3] ^= 1;
  WriteFile(flipped, bytes);

  tvm_ncnn::Options trust;
  trust.trust = dir + "/key.pub";
  CHECK_ERROR(tvm_ncnn::Model::Load(plain, trust), "not signed, and only models signed by " + fingerprint);
  CHECK_ERROR(tvm_ncnn::Model::Load(flipped, trust), "bad signature: the file changed after it was signed");
  trust.trust = dir + "/other.pub";
  CHECK_ERROR(tvm_ncnn::Model::Load(signed_so, trust), "signed by " + fingerprint + ", not by the trusted");
  trust.trust = dir + "/missing.pub";
  CHECK_ERROR(tvm_ncnn::Model::Load(signed_so, trust), "trusted key '" + dir + "/missing.pub'");
  WriteFile(dir + "/garbage.pub", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  trust.trust = dir + "/garbage.pub";
  CHECK_ERROR(tvm_ncnn::Model::Load(signed_so, trust), "not an Ed25519 public key");
  return Finish("test_signature");
}
