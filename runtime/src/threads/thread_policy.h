// The thread policy's C interface (thread_policy.cc): what the runtime library and libtvm_ncnn_threads.so both
// export. Python calls it through ctypes (sdk_python/tvm_ncnn/runtime/native.py); C++ applications use
// tvm_ncnn::CoordinateThreads (runtime.h) instead.
#pragma once

extern "C" {

// How many times an idle thread spins before it sleeps: libgomp's (GOMP_SPINCOUNT) and TVM's pool's
// (TVM_THREAD_POOL_SPIN_COUNT), as tvm-ncnn sets them.
int tvm_ncnn_gomp_spin_count(void);
int tvm_ncnn_tvm_spin_count(void);

// The variables to set for `threads` threads (0: leave TVM_NUM_THREADS alone), given this process's
// environment, one "NAME=value\n" each: those not set already (a user's setting wins), GOMP_SPINCOUNT not when
// OMP_WAIT_POLICY is set, none with TVM_NCNN_WAIT_POLICY=inherit. The text lives until the next call on the
// same thread.
const char* tvm_ncnn_thread_env(int threads);

}
