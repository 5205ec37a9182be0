// A region's weights read in place from the loaded model.so (runtime/FORMAT.md, "Weights section"): export links
// them into model.so's read-only data as a symbol of their own, outside TVM's module blob, so that neither TVM's
// loader nor this runtime copies them. ncnn gets them by pointer; the file pages it has finished reading are
// handed back to the kernel as it goes, so that the peak is what native ncnn's is (one layer's raw weights on top
// of the transformed ones).
#pragma once

#include <datareader.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace tvm_ncnn {

class MappedWeights {
 public:
  // Finds `symbol` (exactly `size` bytes) in a library loaded in this process and keeps that library loaded.
  // Unless the library's file was checked against its seal just before it was loaded (seal.h), checks the bytes
  // against `checksum` (Checksum64). Throws ValueError naming `where` when the symbol is missing or wrong.
  MappedWeights(const std::string& where, const std::string& symbol, uint64_t size, uint64_t checksum);
  ~MappedWeights();
  MappedWeights(const MappedWeights&) = delete;
  MappedWeights& operator=(const MappedWeights&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

  // Lets the kernel drop the whole pages inside [begin, end) (offsets into the weights). They are clean file
  // pages: a later read faults them back in from the file, identical.
  void Release(size_t begin, size_t end) const;

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
  void* handle_ = nullptr;  // the library's dlopen handle: its mapping outlives every ncnn layer pointing into it
};

// ncnn reads the weights through this: by reference (ncnn keeps pointers into the mapping where it does not
// transform a weight). ncnn builds one layer at a time (load_model, then create_pipeline) and reads each weight
// after a small read() of its 4-byte type flag, so a read() marks a point where the weights before the previous
// flag are done with: a layer's weights are transformed in its create_pipeline, after all its weights (each with
// its flag) are read. Releasing only up to the flag before the current one keeps a layer's last-but-one weight
// resident until its pipeline is built (Gemm: B, then its bias C); a weight further back in a layer with more
// flagged weights may fault back in while the pipeline reads it, and ReleaseAll drops those again at the end, so
// what stays resident at run time is only what ncnn reads in place.
class ReleasingReader : public ncnn::DataReader {
 public:
  explicit ReleasingReader(const MappedWeights& weights) : w_(weights) {}
  size_t read(void* buf, size_t size) const override;
  size_t reference(size_t size, const void** buf) const override;
  size_t consumed() const { return pos_; }
  // Releases every page (after load_model: the last layers, what was not read, and what a pipeline faulted back
  // in after its release; what a layer reads in place at run time faults in again then).
  void ReleaseAll() const;

 private:
  const MappedWeights& w_;
  mutable size_t pos_ = 0;
  mutable size_t released_ = 0;  // offset up to which the pages were released, on a page boundary
  mutable size_t last_flag_ = 0;  // where the previous read() began: the weights before it are done with
};

}  // namespace tvm_ncnn
