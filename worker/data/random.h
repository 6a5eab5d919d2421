// Counter-based randomness for the data pipeline: every random decision is a pure function of
// (seed, epoch, batch, view, sample position), never of thread timing or of how many ranks run,
// so resumed, re-sharded and CPU/CUDA runs see identical augmentations.
#pragma once

#include <cmath>
#include <cstdint>

namespace vicreg::data {

// SplitMix64 step (Steele, Lea, Flood 2014): advances `state`, returns 64 well-mixed bits.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Hash of (a, b); use it to derive child seeds: MixSeed(MixSeed(seed, epoch), batch) ...
inline uint64_t MixSeed(uint64_t a, uint64_t b) {
  uint64_t s = a;
  uint64_t x = SplitMix64(s) ^ (b + 0x632be59bd9b4e019ULL);
  return SplitMix64(x);
}

// A small seeded generator (SplitMix64 stream): one per sample, so a sample's draws do not
// depend on the other samples of its batch.
class SampleRng {
 public:
  explicit SampleRng(uint64_t seed) : state_(seed) {}
  uint64_t NextU64() { return SplitMix64(state_); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi) (exactly lo when lo == hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // True with probability p (never for p <= 0, always for p >= 1).
  bool Bernoulli(double p) { return Uniform() < p; }
  // Uniform integer in [0, n) (n >= 1), multiply-shift (Lemire) without modulo bias worth noting.
  int64_t Below(int64_t n) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(NextU64()) * static_cast<uint64_t>(n)) >> 64);
  }

 private:
  uint64_t state_;
};

}  // namespace vicreg::data
