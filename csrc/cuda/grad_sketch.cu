// Sums of per-token outer products and of rows, over "members" (attr_cuda.h):
// the GEMM-shaped parts of project_factored and project_outer, and segment_sum.
//
// token_outer: out[s, p, q] = scale * sum_{n in members(s)} sum_t X[n, t, p] Y[n, t, q]
//   project_factored: X = R_out-projected g, Y = R_in-projected a  (p = o < k_out, q = i < k_in)
//   project_outer:    X = g[:, :, o0 : o0 + Bo], Y = a             (a tile of G, p = o - o0, q = i)
// A block of 256 threads owns one output row s and a 64 x 64 tile of (p, q);
// each thread holds 4 x 4 sums at p = ty + 16 a, q = tx + 16 b (shared-memory
// reads conflict-free, global writes coalesced along q). Tokens are read in
// chunks of 16 (staged in shared memory, converted to the accumulation type:
// float, or double for float64 input); each chunk is accumulated in fresh
// registers by explicit FMAs and then added to the running sums, so a long
// token sequence never rounds against one ever-growing sum. Members are taken
// in order, so rows of one segment continue the same sums in row order -- as if
// their tokens were concatenated (up to where the 16-token chunks fall).
//
// segment_sum: one thread per (output row, column) adds its member rows in
// order starting from 0 -- the CPU kernel's exact sequence, so both devices
// give identical bits.
#include "attr_device.cuh"

namespace trustattr::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 64;        // p and q per block
constexpr int kTokenChunk = 16;  // tokens staged per step

template <Elem E, typename Acc>
__global__ void __launch_bounds__(kThreads) token_outer_kernel(const TokenOuterParams p) {
  __shared__ Acc xs[kTokenChunk][kTile];
  __shared__ Acc ys[kTokenChunk][kTile];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t s = blockIdx.x;
  const int64_t p0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t q0 = static_cast<int64_t>(blockIdx.z) * kTile;
  const MemberRange range = member_range(p.members, s);

  Acc acc[4][4];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b) acc[a][b] = Acc(0);

  for (int64_t m = range.begin; m < range.end; ++m) {
    const int64_t n = member_row(p.members, m);
    const int64_t x_row = n * p.x.stride_n, y_row = n * p.y.stride_n;
    for (int64_t t0 = 0; t0 < p.t; t0 += kTokenChunk) {
      __syncthreads();  // the previous chunk's reads are done
      for (int e = tid; e < kTokenChunk * kTile; e += kThreads) {
        const int tt = e / kTile, c = e % kTile;
        const int64_t t = t0 + tt;
        Acc xv = Acc(0), yv = Acc(0);
        if (t < p.t) {
          if (p0 + c < p.p_count)
            xv = load_elem<E, Acc>(p.x.data, x_row + t * p.x.stride_t + (p0 + c) * p.x.stride_c);
          if (q0 + c < p.q_count)
            yv = load_elem<E, Acc>(p.y.data, y_row + t * p.y.stride_t + (q0 + c) * p.y.stride_c);
        }
        xs[tt][c] = xv;
        ys[tt][c] = yv;
      }
      __syncthreads();
      Acc part[4][4];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) part[a][b] = Acc(0);
#pragma unroll 4
      for (int tt = 0; tt < kTokenChunk; ++tt) {
        Acc xv[4], yv[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) xv[a] = xs[tt][ty + 16 * a];
#pragma unroll
        for (int b = 0; b < 4; ++b) yv[b] = ys[tt][tx + 16 * b];
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
          for (int b = 0; b < 4; ++b) part[a][b] = fma_acc(xv[a], yv[b], part[a][b]);
      }
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] += part[a][b];
    }
  }

  Acc* out = static_cast<Acc*>(p.out) + s * p.ldo;
  const Acc scale = static_cast<Acc>(p.scale);
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int64_t pp = p0 + ty + 16 * a;
    if (pp >= p.p_count) continue;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int64_t qq = q0 + tx + 16 * b;
      if (qq < p.q_count) out[pp * p.q_count + qq] = acc[a][b] * scale;
    }
  }
}

template <Elem E, typename Acc>
__global__ void __launch_bounds__(kThreads) segment_sum_kernel(const SegmentSumParams p) {
  const int64_t s = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= p.k) return;
  const MemberRange range = member_range(p.members, s);
  Acc acc = Acc(0);
  for (int64_t m = range.begin; m < range.end; ++m)
    acc += load_elem<E, Acc>(p.x.data, member_row(p.members, m) * p.x.stride_row + c * p.x.stride_col);
  static_cast<Acc*>(p.out)[s * p.k + c] = acc;
}

template <Elem E>
struct TokenOuterLaunch {
  static cudaError_t run(const TokenOuterParams& p, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>(p.rows_out), static_cast<unsigned>(ceil_div(p.p_count, kTile)),
                    static_cast<unsigned>(ceil_div(p.q_count, kTile)));
    token_outer_kernel<E, AccOf<E>><<<grid, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  }
};

template <Elem E>
struct SegmentSumLaunch {
  static cudaError_t run(const SegmentSumParams& p, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>(p.rows_out), static_cast<unsigned>(ceil_div(p.k, kThreads)));
    segment_sum_kernel<E, AccOf<E>><<<grid, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t launch_token_outer(const TokenOuterParams& p, cudaStream_t stream) {
  if (p.rows_out == 0) return cudaSuccess;
  if (p.rows_out > kMaxGridX || ceil_div(p.p_count, kTile) > kMaxGridY ||
      ceil_div(p.q_count, kTile) > kMaxGridY || p.p_count < 1 || p.q_count < 1)
    return cudaErrorInvalidValue;
  return dispatch_elem<TokenOuterLaunch>(p.elem, p, stream);
}

cudaError_t launch_segment_sum(const SegmentSumParams& p, cudaStream_t stream) {
  if (p.rows_out == 0 || p.k == 0) return cudaSuccess;
  if (p.rows_out > kMaxGridX || ceil_div(p.k, kThreads) > kMaxGridY || p.members.start == nullptr)
    return cudaErrorInvalidValue;
  return dispatch_elem<SegmentSumLaunch>(p.x.elem, p, stream);
}

}  // namespace trustattr::cuda
