// Ed25519 public key files: PEM "PUBLIC KEY" (X.509 SubjectPublicKeyInfo), what `tvm-ncnn keygen KEY` writes
// to KEY.pub and what `openssl pkey -pubout` writes for an Ed25519 key, so either tool's keys work. For Ed25519
// the DER is a fixed 12-byte prefix (RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }) and the
// 32-byte key: matched whole, no ASN.1 parser. The private key is never read here (the SDK signs).
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "format/signature.h"
#include "internal.h"
#include "monocypher.h"
#include "tvm_ncnn/runtime.h"

namespace tvm_ncnn {
namespace {

constexpr unsigned char kSpkiPrefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
constexpr char kBegin[] = "-----BEGIN PUBLIC KEY-----";
constexpr char kEnd[] = "-----END PUBLIC KEY-----";

// Standard base64 (RFC 4648) with padding; white space skipped. False on any other character.
bool DecodeBase64(const std::string& text, std::string* out) {
  unsigned bits = 0;
  int nbits = 0;
  size_t pad = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') { ++pad; continue; }
    else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    else return false;
    if (pad) return false;  // data after padding
    bits = (bits << 6) | static_cast<unsigned>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out->push_back(static_cast<char>((bits >> nbits) & 0xff));
    }
  }
  return pad <= 2;
}

}  // namespace

Ed25519PublicKey ReadPublicKeyFile(const std::string& path) {
  const std::string name = "trusted key '" + path + "'";
  const int64_t size = CheckReadableFile(path, "trusted key");
  if (size > 16384) throw Error(name + ": not an Ed25519 public key (" + std::to_string(size) + " bytes)");
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const std::string expected = ": not an Ed25519 public key (expected a PEM 'PUBLIC KEY' file: tvm-ncnn keygen's "
                               "KEY.pub)";
  if (text.find("PRIVATE KEY") != std::string::npos) {
    throw Error(name + ": is a private key; give the public one (KEY.pub), and keep KEY off the device");
  }
  const size_t begin = text.find(kBegin), end = text.find(kEnd);
  if (begin == std::string::npos || end == std::string::npos || end < begin) throw Error(name + expected);
  std::string der;
  const size_t body = begin + sizeof(kBegin) - 1;
  if (!DecodeBase64(text.substr(body, end - body), &der) || der.size() != sizeof(kSpkiPrefix) + 32 ||
      std::memcmp(der.data(), kSpkiPrefix, sizeof(kSpkiPrefix)) != 0) {
    throw Error(name + expected);
  }
  Ed25519PublicKey key;
  std::memcpy(key.data(), der.data() + sizeof(kSpkiPrefix), key.size());
  return key;
}

std::string KeyFingerprint(const Ed25519PublicKey& key) {
  uint8_t hash[64];
  crypto_blake2b(hash, key.data(), key.size());
  static const char kHex[] = "0123456789abcdef";
  std::string out = "ed25519:";
  for (int i = 0; i < 8; ++i) {
    out.push_back(kHex[hash[i] >> 4]);
    out.push_back(kHex[hash[i] & 15]);
  }
  return out;
}

}  // namespace tvm_ncnn
