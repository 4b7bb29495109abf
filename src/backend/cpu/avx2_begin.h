// Opens an AVX2 + FMA region (see simd.h): the functions defined between this include and
// backend/cpu/avx2_end.h are compiled for avx2,fma. Include every ordinary header before it, so
// that only the file's own functions (a namespace `avx2` of the kernel's *_impl.h) use the wider
// instructions and the run-time dispatch stays safe on CPUs without them. No include guard: each
// *_avx2.cpp opens and closes one region.
#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#endif
