// Runtime choice of the CPU instruction set for the channel-wise kernels (wkv4, linear_scan,
// conv1d). Each such kernel file is compiled twice: as is (the build's baseline, SSE2 on x86-64)
// and under `#pragma GCC target("avx2,fma")` in a *_avx2.cpp twin (same source, an `avx2`
// namespace); the entry point calls the AVX2 twin when the CPU has AVX2 and FMA.
// LRNN_SIMD=baseline in the environment, or force_baseline(true), keeps the baseline path (tests
// compare the two).
#pragma once

namespace lrnn::cpu {

bool cpu_has_avx2_fma();        // __builtin_cpu_supports("avx2") && ("fma"); false off x86-64
bool use_avx2();                // cpu_has_avx2_fma() and not forced to the baseline
void force_baseline(bool on);   // process-wide; for tests and benchmarks
const char* simd_path_name();   // "avx2+fma" or "baseline": what use_avx2() picks now

}  // namespace lrnn::cpu
