// The pool a region's call hands ncnn for its blobs and workspace: like ncnn's UnlockedPoolAllocator (freed
// blocks are kept and handed out again), but a steady loop of calls allocates nothing on the heap. ncnn's pool
// moves every block between two std::lists, one list node allocated per fastMalloc -- 242 of the 532 allocations
// a mobilenetv2 frame made. Here the blocks sit in one vector that only grows when a new block is needed.
//
// One caller at a time, as UnlockedPoolAllocator: each concurrent call has its own (region.h CallState).
#pragma once

#include <cstddef>
#include <vector>

#include "allocator.h"  // ncnn

namespace tvm_ncnn {

class SteadyPool final : public ncnn::Allocator {
 public:
  SteadyPool() = default;
  SteadyPool(const SteadyPool&) = delete;
  SteadyPool& operator=(const SteadyPool&) = delete;
  ~SteadyPool() override;

  // The smallest free block of at least `size` bytes, or a new one.
  void* fastMalloc(size_t size) override;
  void fastFree(void* ptr) override;

 private:
  struct Block {
    void* data;
    size_t size;
    bool used;
  };
  void DropSmallestFree();

  std::vector<Block> blocks_;
};

}  // namespace tvm_ncnn
