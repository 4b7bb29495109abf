// What the kernel headers that also compile as host C++ (stabiliser.cuh, gate_scan.cuh: tests/support/
// cuda_emu.h runs them on the CPU) take from the compiler: `#pragma unroll` only where a CUDA compiler
// reads it, and a kernel's dynamic shared memory as a pointer (the emulation gives each CTA a buffer).
#pragma once

#ifdef __CUDACC__
#define LRNN_UNROLL _Pragma("unroll")
#define LRNN_UNROLL_16 _Pragma("unroll 16")
#else
#define LRNN_UNROLL
#define LRNN_UNROLL_16
#endif

// Declares `T* x` on the kernel's dynamic shared memory.
#ifndef LRNN_DYN_SMEM
#define LRNN_DYN_SMEM(T, x) extern __shared__ __align__(16) T x[]
#endif
