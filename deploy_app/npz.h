// deploy_app/npz.cc: numpy's .npz, an uncompressed zip of NAME.npy entries, written without a zip library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tvm_ncnn/runtime.h"

namespace deploy_app {

// zip's CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) of size bytes.
uint32_t Crc32(const void* data, size_t size);

// The bytes of a zip archive that stores each (name, bytes) entry as is (method 0, no compression), in order.
// Throws tvm_ncnn::Error for what the plain (non-zip64) format cannot hold: 65535 entries, 4 GB.
std::string ZipStore(const std::vector<std::pair<std::string, std::string>>& entries);

// Writes path as numpy.savez would: one NAME.npy entry per (name, tensor). Throws tvm_ncnn::Error naming path.
void SaveNpz(const std::string& path, const std::vector<std::pair<std::string, const tvm_ncnn::Tensor*>>& arrays);

}  // namespace deploy_app
