// Host-side control of the pyemu runtime (schedule seed, injected faults, launch
// statistics), used by the bindings of pyface._C_emu and by nothing in a kernel.
#pragma once
#include <string>
#include <tuple>
#include <vector>

namespace pyemu {

// Faults injected by the runtime, for the mutation tests (no rebuild needed):
// kFaultSyncthreads: every __syncthreads returns at once (as if removed);
// kFaultShuffle: xor/down shuffles by 16 lanes return the caller's own value
// (a warp reduction that skips its first step).
enum Fault : int { kFaultNone = 0, kFaultSyncthreads = 1, kFaultShuffle = 2 };

struct LaunchStat {
  long long launches = 0, blocks = 0, threads = 0;
  long long partial_warp_blocks = 0;  // blocks whose size is not a multiple of 32
  long long early_exit_threads = 0;   // threads that skipped barriers/collectives others of their block ran
  long long failures = 0;             // launches that reported a deadlock or a bad collective
};

// seed < 0: deterministic round robin over threads; otherwise a seeded shuffle of warps.
void set_schedule_seed(long long seed);
long long schedule_seed();
void set_fault(int fault);
int fault();
// (kernel as written at the launch, parameter types, counts) per instantiation.
std::vector<std::tuple<std::string, std::string, LaunchStat>> launch_stats(bool reset);

}  // namespace pyemu
