// The calibration probe: while it is on, every ncnn region that runs also hands over the named intermediate
// blobs the SDK asked for (int8 calibration needs the input of each layer it quantizes; model.so otherwise
// exposes only region outputs). Off by default; when off the cost is one relaxed atomic load per region call.
// Driven from Python through the tvm_ncnn.probe_* functions (probe.cc); not part of runtime.h.
#pragma once

#include <net.h>

#include <string>

namespace tvm_ncnn {
namespace probe {

// True while a probe is started: the region runs its extractor without light mode (so asked-for blobs are
// still there after the outputs) and calls Collect afterwards.
bool Active();

// Copies the blobs asked for of region `where` (the region's "ncnn region '<symbol>'" name) out of `ex`.
void Collect(const std::string& where, ncnn::Extractor& ex);

}  // namespace probe
}  // namespace tvm_ncnn
