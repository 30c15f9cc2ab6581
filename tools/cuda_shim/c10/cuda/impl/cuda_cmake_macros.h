// Stand-in for the header that CPU-only torch wheels omit (tools/check_cuda_compile.sh puts it on the
// include path). CUDA wheels generate it with exactly this content.
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
