// pyemu runtime: block scheduler (fibers), warp collectives, shared
// memory, and the small part of the CUDA runtime API that the launch code uses.
#include "pyemu_runtime.h"

#include <cuda_runtime.h>
#include <cxxabi.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

// AddressSanitizer must be told about every stack switch, or it reports false
// stack overflows and misses real ones on the fiber stacks.
#if defined(__SANITIZE_ADDRESS__)
#define PYEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYEMU_ASAN 1
#endif
#endif
#ifdef PYEMU_ASAN
#include <sanitizer/common_interface_defs.h>
#define PYEMU_START_SWITCH(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define PYEMU_FINISH_SWITCH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define PYEMU_START_SWITCH(save, bottom, size) ((void)0)
#define PYEMU_FINISH_SWITCH(save, bottom, size) ((void)0)
#endif

namespace pyemu {

// Fiber switch. On x86-64 a hand-written switch of the callee-saved registers
// (plus MXCSR and the x87 control word): swapcontext also saves the signal mask
// with a system call on every switch, which made the emulation ~3x slower.
#if defined(__x86_64__) && !defined(PYEMU_UCONTEXT)
extern "C" void pyemu_switch(void** save_sp, void* to_sp);
asm(R"(
  .text
  .globl pyemu_switch
  .hidden pyemu_switch
  .type pyemu_switch, @function
pyemu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size pyemu_switch, .-pyemu_switch
)");
struct Context {
  void* sp = nullptr;
};
inline void context_init(Context& c, char* stack, size_t size, void (*entry)()) {
  uint64_t* sp = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15));
  *--sp = 0;                                   // entry's return address: it never returns
  *--sp = reinterpret_cast<uintptr_t>(entry);  // taken by pyemu_switch's ret
  for (int i = 0; i < 6; ++i) *--sp = 0;       // rbp rbx r12 r13 r14 r15
  uint32_t mxcsr = 0;
  uint16_t fpucw = 0;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fpucw));
  *--sp = mxcsr | static_cast<uint64_t>(fpucw) << 32;
  c.sp = sp;
}
inline void context_switch(Context& from, Context& to) { pyemu_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
inline void context_init(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;  // entry never returns
  makecontext(&c.uc, entry, 0);
}
inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

thread_local uint3 t_threadIdx, t_blockIdx;
thread_local dim3 t_blockDim, t_gridDim;

namespace {
enum class St { Ready, WaitBlock, WaitWarp, Done };
constexpr size_t kStack = 256 * 1024;
constexpr size_t kStaticSmem = 48 * 1024;

struct Fiber {
  Context ctx;
  uint3 tid;
  int lane = 0, warp = 0;
  St st = St::Ready;
  uint64_t result = 0;
  std::unique_ptr<char[]> stack;
  void* fake_stack = nullptr;  // ASan bookkeeping
  long long syncs = 0;         // barriers and collectives taken part in (this block)
};
struct Group {
  unsigned mask = 0, arrived = 0;
  Op op = kSyncwarp;
  int width = 32;
  uint64_t val[32];
  int arg[32];
};
struct Warp {
  unsigned exists = 0, live = 0;
  std::vector<Group> pending;
};
const char* op_name(Op o) {
  static const char* n[] = {"__shfl_sync",   "__shfl_xor_sync", "__shfl_down_sync", "__shfl_up_sync",
                            "__ballot_sync", "__all_sync",      "__any_sync",       "__syncwarp"};
  return n[o];
}
struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int live = 0, arrived = 0;
  Context sched;
  Fiber* cur = nullptr;
  Body body = nullptr;
  void* arg = nullptr;
  std::vector<std::pair<const void*, size_t>> sites;
  size_t smem_used = 0;
  std::unique_ptr<unsigned char[]> smem{new unsigned char[kStaticSmem]};
  std::vector<unsigned char> dyn;
  std::string error;
  const void* sched_bottom = nullptr;  // the scheduler's (OS thread's) stack, for ASan
  size_t sched_size = 0;
  long long early_exits = 0;
};
thread_local Block* S = nullptr;
thread_local cudaError_t g_last = cudaSuccess;

struct Config {
  std::mutex mu;
  long long seed = -1;  // -1: round robin
  std::atomic<int> fault{kFaultNone};
  std::map<std::pair<std::string, std::string>, LaunchStat> stats;
};
Config& config() {
  static Config* c = [] {
    auto* x = new Config;
    if (const char* e = std::getenv("PYEMU_SCHED_SEED")) x->seed = std::atoll(e);
    return x;
  }();
  return *c;
}

void yield_to_scheduler() {
  Fiber* f = S->cur;
  PYEMU_START_SWITCH(&f->fake_stack, S->sched_bottom, S->sched_size);
  context_switch(f->ctx, S->sched);
  PYEMU_FINISH_SWITCH(f->fake_stack, &S->sched_bottom, &S->sched_size);
}

void release_block() {
  for (auto& f : S->fibers)
    if (f.st == St::WaitBlock) f.st = St::Ready;
  S->arrived = 0;
}

uint64_t shfl_value(const Group& g, int lane, int fault) {
  const int w = g.width, base = lane & ~(w - 1), maxl = base + w - 1, a = g.arg[lane];
  int j = lane;
  // Injected fault: the first butterfly step of a 32-lane reduction is lost (the
  // classic "loop starts at offset 8" bug); every lane keeps its own value there.
  if (fault == kFaultShuffle && (g.op == kShflXor || g.op == kShflDown) && a == 16) return g.val[lane];
  switch (g.op) {
    case kShflIdx: j = base + (a & (w - 1)); break;
    case kShflXor:
      j = lane ^ a;
      if (j > maxl) j = lane;
      break;
    case kShflDown:
      j = lane + a;
      if (j > maxl) j = lane;
      break;
    case kShflUp:
      j = lane - a;
      if (j < base) j = lane;
      break;
    default: break;
  }
  if (j < 0 || j > 31 || !(g.arrived >> j & 1u)) return ~0ull;  // source lane did not take part: undefined on a GPU
  return g.val[j];
}

void try_complete(Warp& w, size_t gi) {
  Group& g = w.pending[gi];
  if ((g.mask & w.live) & ~g.arrived) return;
  unsigned pred = 0;
  for (int l = 0; l < 32; ++l)
    if ((g.arrived >> l & 1u) && g.val[l]) pred |= 1u << l;
  const int wi = static_cast<int>(&w - S->warps.data());
  const int fault = config().fault;
  for (int l = 0; l < 32; ++l) {
    if (!(g.arrived >> l & 1u)) continue;
    Fiber& f = S->fibers[wi * 32 + l];
    switch (g.op) {
      case kBallot: f.result = pred; break;
      case kAll: f.result = pred == g.arrived; break;
      case kAny: f.result = pred != 0; break;
      case kSyncwarp: f.result = 0; break;
      default: f.result = shfl_value(g, l, fault);
    }
    f.st = St::Ready;
  }
  w.pending.erase(w.pending.begin() + gi);
}

void fiber_exit(Fiber* f) {
  f->st = St::Done;
  --S->live;
  Warp& w = S->warps[f->warp];
  w.live &= ~(1u << f->lane);
  for (size_t gi = w.pending.size(); gi-- > 0;) try_complete(w, gi);
  if (S->arrived > 0 && S->arrived == S->live) release_block();
}

void fiber_entry() {
  PYEMU_FINISH_SWITCH(nullptr, &S->sched_bottom, &S->sched_size);
  Fiber* f = S->cur;
  S->body(S->arg);
  fiber_exit(f);
  PYEMU_START_SWITCH(nullptr, S->sched_bottom, S->sched_size);  // this fiber ends
  context_switch(f->ctx, S->sched);                             // never resumed
  std::abort();
}

std::string describe_deadlock() {
  std::string m = "deadlock in block (" + std::to_string(t_blockIdx.x) + "," + std::to_string(t_blockIdx.y) + "," +
                  std::to_string(t_blockIdx.z) + "): " + std::to_string(S->arrived) + " of " + std::to_string(S->live) +
                  " live threads wait at __syncthreads";
  for (size_t wi = 0; wi < S->warps.size(); ++wi)
    for (auto& g : S->warps[wi].pending) {
      char b[200];
      std::snprintf(b, sizeof b, "; warp %zu: lanes %08x wait at %s(mask %08x), lanes %08x missing", wi, g.arrived,
                    op_name(g.op), g.mask, (g.mask & S->warps[wi].live) & ~g.arrived);
      m += b;
    }
  return m;
}

void run_block(dim3 block, std::mt19937_64* rng) {
  const int n = static_cast<int>(block.x * block.y * block.z);
  const int nw = (n + 31) / 32;
  if (S->fibers.size() < static_cast<size_t>(n)) S->fibers.resize(n);
  S->warps.assign(nw, Warp{});
  for (int w = 0; w < nw; ++w) {
    const int lanes = std::min(32, n - 32 * w);
    S->warps[w].exists = S->warps[w].live = lanes == 32 ? ~0u : ((1u << lanes) - 1u);
  }
  S->live = n;
  S->arrived = 0;
  S->sites.clear();
  S->smem_used = 0;
  std::memset(S->smem.get(), 0xff, kStaticSmem);  // poison: shared memory starts undefined
  std::fill(S->dyn.begin(), S->dyn.end(), 0xff);
  for (int i = 0; i < n; ++i) {
    Fiber& f = S->fibers[i];
    f.tid = uint3{static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                  static_cast<unsigned>(i / (block.x * block.y))};
    f.lane = i % 32;
    f.warp = i / 32;
    f.st = St::Ready;
    f.syncs = 0;
    if (!f.stack) f.stack.reset(new char[kStack]);
    context_init(f.ctx, f.stack.get(), kStack, fiber_entry);
  }
  // Default: round robin over all threads. With a schedule seed, warps get a
  // random priority per block and the first warp that can run keeps running, so
  // one warp races as far ahead of the others as the barriers allow; the lanes of
  // a warp also run in a shuffled order (independent thread scheduling, sm_70+).
  const bool seeded = rng != nullptr;
  std::vector<int> prio(nw), order(n);
  for (int w = 0; w < nw; ++w) prio[w] = w;
  for (int i = 0; i < n; ++i) order[i] = i;
  if (seeded) {
    std::shuffle(prio.begin(), prio.end(), *rng);
    for (int w = 0; w < nw; ++w) std::shuffle(order.begin() + 32 * w, order.begin() + std::min(n, 32 * w + 32), *rng);
  }
  auto run = [&](Fiber& f) {
    S->cur = &f;
    t_threadIdx = f.tid;
    void* fake = nullptr;
    PYEMU_START_SWITCH(&fake, f.stack.get(), kStack);
    context_switch(S->sched, f.ctx);
    PYEMU_FINISH_SWITCH(fake, nullptr, nullptr);
  };
  while (S->error.empty()) {
    bool progress = false, all_done = true;
    for (int w : prio) {
      for (int k = 32 * w; k < std::min(n, 32 * w + 32) && S->error.empty(); ++k) {
        Fiber& f = S->fibers[order[k]];
        if (f.st == St::Ready) {
          run(f);
          progress = true;
        }
        all_done &= f.st == St::Done;
      }
      if (seeded && progress) break;  // restart from the highest-priority warp
    }
    if (!S->error.empty()) break;
    if (!progress) {
      if (all_done) break;
      S->error = describe_deadlock();
    }
  }
  // Threads that left before barriers/collectives that others of the block took
  // part in: the partial warps and blocks of a launch were exercised.
  long long most = 0;
  for (int i = 0; i < n; ++i) most = std::max(most, S->fibers[i].syncs);
  for (int i = 0; i < n; ++i) S->early_exits += S->fibers[i].syncs < most;
}
}  // namespace

void fail(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (!S || !S->cur) {
    std::fprintf(stderr, "pyemu: %s\n", buf);
    std::abort();
  }
  char where[128];
  std::snprintf(where, sizeof where, " [block (%u,%u,%u) thread (%u,%u,%u)]", t_blockIdx.x, t_blockIdx.y, t_blockIdx.z,
                t_threadIdx.x, t_threadIdx.y, t_threadIdx.z);
  S->error = std::string(buf) + where;
  yield_to_scheduler();  // never resumed
  std::abort();
}

void syncthreads() {
  if (config().fault == kFaultSyncthreads) return;  // injected fault: barriers vanish
  Fiber* f = S->cur;
  ++f->syncs;
  f->st = St::WaitBlock;
  if (++S->arrived == S->live) release_block();
  yield_to_scheduler();
}

uint64_t warp_collective(Op op, unsigned mask, uint64_t bits, int arg, int width) {
  Fiber* f = S->cur;
  ++f->syncs;
  Warp& w = S->warps[f->warp];
  const unsigned bit = 1u << f->lane;
  if (!(mask & bit)) fail("%s: the calling lane %d is not in mask %08x", op_name(op), f->lane, mask);
  if (mask & ~w.exists) fail("%s: mask %08x names lanes beyond the block (%08x exist)", op_name(op), mask, w.exists);
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail("%s: width %d is not a power of two <= 32", op_name(op), width);
  size_t gi = w.pending.size();
  for (size_t i = 0; i < w.pending.size(); ++i) {
    Group& g = w.pending[i];
    if (g.mask == mask) {
      gi = i;
      break;
    }
    if (g.mask & mask)
      fail("%s(mask %08x) meets %s(mask %08x) in the same warp", op_name(op), mask, op_name(g.op), g.mask);
  }
  if (gi == w.pending.size()) {
    w.pending.emplace_back();
    w.pending.back().mask = mask;
    w.pending.back().op = op;
    w.pending.back().width = width;
  }
  Group& g = w.pending[gi];
  if (g.op != op || g.width != width)
    fail("lanes of one warp meet at different collectives: %s vs %s (or widths %d vs %d)", op_name(op), op_name(g.op),
         width, g.width);
  if (g.arrived & bit) fail("%s: lane %d arrived twice", op_name(op), f->lane);
  g.val[f->lane] = bits;
  g.arg[f->lane] = arg;
  g.arrived |= bit;
  f->st = St::WaitWarp;
  try_complete(w, gi);
  yield_to_scheduler();
  return f->result;
}

void* block_shared(const void* site, size_t bytes, size_t align) {
  for (auto& s : S->sites)
    if (s.first == site) return S->smem.get() + s.second;
  size_t off = (S->smem_used + align - 1) / align * align;
  if (off + bytes > kStaticSmem) fail("static __shared__ memory over %zu bytes", kStaticSmem);
  S->sites.emplace_back(site, off);
  S->smem_used = off + bytes;
  return S->smem.get() + off;
}

void* dynamic_shared() { return S->dyn.data(); }

const char* demangle_type(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : mangled;
  std::free(d);
  for (const char* junk : {"pyface::(anonymous namespace)::", "pyface::", "(anonymous namespace)::"})
    for (size_t p; (p = s.find(junk)) != std::string::npos;) s.erase(p, std::strlen(junk));
  return (new std::string(s))->c_str();  // one per kernel instantiation, kept for the process
}

cudaError_t launch_raw(const char* name, const char* sig, dim3 grid, dim3 block, size_t smem, void*, Body body,
                       void* arg) {
  const unsigned long long nt = 1ull * block.x * block.y * block.z;
  if (nt == 0 || nt > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "pyemu: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)\n", grid.x, grid.y,
                 grid.z, block.x, block.y, block.z);
    return g_last = cudaErrorInvalidConfiguration;
  }
  if (smem > kStaticSmem) {
    std::fprintf(stderr, "pyemu: %zu bytes of dynamic shared memory (over 48 KiB without an opt-in)\n", smem);
    return g_last = cudaErrorInvalidValue;
  }
  static thread_local Block blk;
  Block* saved = S;
  S = &blk;
  blk.body = body;
  blk.arg = arg;
  blk.error.clear();
  blk.dyn.assign((smem + 15) / 16 * 16, 0xff);
  blk.early_exits = 0;
  t_gridDim = grid;
  t_blockDim = block;
  long long seed;
  {
    std::lock_guard<std::mutex> lock(config().mu);
    seed = config().seed;
  }
  // One generator per launch: a launch's schedule depends only on the seed and
  // the launch's own configuration, not on what ran before it.
  std::unique_ptr<std::mt19937_64> rng;
  if (seed >= 0)
    rng.reset(new std::mt19937_64(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull + grid.x * 31u + block.x));
  unsigned long long blocks = 0;
  for (unsigned z = 0; z < grid.z && blk.error.empty(); ++z)
    for (unsigned y = 0; y < grid.y && blk.error.empty(); ++y)
      for (unsigned x = 0; x < grid.x && blk.error.empty(); ++x) {
        t_blockIdx = uint3{x, y, z};
        run_block(block, rng.get());
        ++blocks;
      }
  {
    std::lock_guard<std::mutex> lock(config().mu);
    std::string n = name;
    if (n.size() > 2 && n.front() == '(' && n.back() == ')') n = n.substr(1, n.size() - 2);
    LaunchStat& st = config().stats[{n, sig}];
    st.launches += 1;
    st.blocks += blocks;
    st.threads += blocks * nt;
    st.partial_warp_blocks += nt % 32 ? blocks : 0;
    st.early_exit_threads += blk.early_exits;
    st.failures += blk.error.empty() ? 0 : 1;
  }
  cudaError_t r = cudaSuccess;
  if (!blk.error.empty()) {
    std::fprintf(stderr, "pyemu: kernel failed: %s\n", blk.error.c_str());
    blk.fibers.clear();  // abandoned fibers: drop their stacks
    r = g_last = cudaErrorLaunchFailure;
  }
  S = saved;
  return r;
}
void set_schedule_seed(long long seed) {
  std::lock_guard<std::mutex> lock(config().mu);
  config().seed = seed < 0 ? -1 : seed;
}
long long schedule_seed() {
  std::lock_guard<std::mutex> lock(config().mu);
  return config().seed;
}
void set_fault(int fault) { config().fault = fault; }
int fault() { return config().fault; }
std::vector<std::tuple<std::string, std::string, LaunchStat>> launch_stats(bool reset) {
  std::lock_guard<std::mutex> lock(config().mu);
  std::vector<std::tuple<std::string, std::string, LaunchStat>> out;
  for (auto& kv : config().stats) out.emplace_back(kv.first.first, kv.first.second, kv.second);
  if (reset) config().stats.clear();
  return out;
}
}  // namespace pyemu

// The runtime API subset (host memory stands in for device memory).
extern "C" {
cudaError_t cudaGetLastError(void) {
  cudaError_t e = pyemu::g_last;
  pyemu::g_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return pyemu::g_last; }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure (pyemu: see stderr)";
    default: return "pyemu: unsupported error";
  }
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  std::memset(d, v, n);
  return cudaSuccess;
}
}
extern "C" void pyemu_sync() {}
