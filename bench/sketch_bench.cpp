// Micro-benchmarks of the DDSketch: add (and the floor of reading its input), merge, quantile,
// encode and decode. Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// and compare the medians of BM_sketch_add and BM_sketch_add_floor.
#include "aggregate/sketch.hpp"

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using plugmon::agent::dd_sketch;

constexpr std::size_t value_count = 1 << 16;  // 512 KiB: the input stays in L2
constexpr std::size_t value_mask = value_count - 1;

/// Query durations in ns: lognormal around 1 ms, spanning about 1 µs .. 100 s.
std::vector<std::uint64_t> lognormal_values(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> d(std::log(1e6), 1.5);
    std::vector<std::uint64_t> v(value_count);
    for (auto& x : v) x = static_cast<std::uint64_t>(std::llround(std::fmin(d(rng), 1e11)));
    return v;
}

const std::vector<std::uint64_t>& values() {
    static const std::vector<std::uint64_t> v = lognormal_values(42);
    return v;
}

dd_sketch sketch_of(std::uint64_t seed, int rounds) {
    const std::vector<std::uint64_t> v = lognormal_values(seed);
    dd_sketch s;
    for (int r = 0; r < rounds; ++r)
        for (std::uint64_t x : v) s.add(x);
    return s;
}

/// The floor: the same loop reading the same input, summed instead of recorded.
void BM_sketch_add_floor(benchmark::State& state) {
    const std::uint64_t* v = values().data();
    std::size_t i = 0;
    std::uint64_t sum = 0;
    for (auto _ : state) {
        sum += v[i];
        benchmark::DoNotOptimize(sum);
        i = (i + 1) & value_mask;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_sketch_add_floor);

void BM_sketch_add(benchmark::State& state) {
    const std::uint64_t* v = values().data();
    dd_sketch s;
    // Once through the input first, so that the window has grown: the steady state.
    for (std::size_t k = 0; k < value_count; ++k) s.add(v[k]);
    std::size_t i = 0;
    for (auto _ : state) {
        s.add(v[i]);
        i = (i + 1) & value_mask;
    }
    benchmark::DoNotOptimize(s.quantile(0.5));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_sketch_add);

/// add into a fresh sketch each round of the input: includes growing the window.
void BM_sketch_add_cold(benchmark::State& state) {
    const std::vector<std::uint64_t>& v = values();
    for (auto _ : state) {
        dd_sketch s;
        for (std::uint64_t x : v) s.add(x);
        benchmark::DoNotOptimize(s.count());
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(value_count));
}
BENCHMARK(BM_sketch_add_cold);

void BM_sketch_add_weighted(benchmark::State& state) {
    const std::uint64_t* v = values().data();
    dd_sketch s = sketch_of(42, 1);
    std::size_t i = 0;
    for (auto _ : state) {
        s.add(v[i], 3);
        i = (i + 1) & value_mask;
    }
    benchmark::DoNotOptimize(s.quantile(0.5));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_sketch_add_weighted);

/// One window's sketch (65536 lognormal values) merged into an accumulator.
void BM_sketch_merge(benchmark::State& state) {
    dd_sketch acc = sketch_of(1, 1);
    const dd_sketch window = sketch_of(2, 1);
    for (auto _ : state) acc.merge(window);
    benchmark::DoNotOptimize(acc.count());
}
BENCHMARK(BM_sketch_merge);

/// Argument: q in per mille.
void BM_sketch_quantile(benchmark::State& state) {
    const dd_sketch s = sketch_of(3, 4);
    const double q = double(state.range(0)) / 1000;
    for (auto _ : state) benchmark::DoNotOptimize(s.quantile(q));
}
BENCHMARK(BM_sketch_quantile)->Arg(500)->Arg(990)->Arg(999);

void BM_sketch_encode(benchmark::State& state) {
    const dd_sketch s = sketch_of(4, 4);
    std::size_t bytes = 0;
    for (auto _ : state) {
        const std::string e = s.encode();
        bytes = e.size();
        benchmark::DoNotOptimize(e.data());
    }
    state.SetBytesProcessed(state.iterations() * std::int64_t(bytes));
    state.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_sketch_encode);

void BM_sketch_decode(benchmark::State& state) {
    const std::string e = sketch_of(5, 4).encode();
    for (auto _ : state) {
        const dd_sketch s = dd_sketch::decode(e);
        benchmark::DoNotOptimize(s.count());
    }
    state.SetBytesProcessed(state.iterations() * std::int64_t(e.size()));
    state.counters["bytes"] = double(e.size());
}
BENCHMARK(BM_sketch_decode);

}  // namespace
