// Remote write's cost per window: render the cumulative series of 1000 query series, encode the
// protobuf and snappy-compress it, native histograms or classic buckets; samples/s and bytes per
// sample, with the encoding alone (no snappy) as the floor measured in the same run.
#include "aggregate/series.hpp"
#include "aggregate/sketch.hpp"
#include "config/config.hpp"
#include "export/remote_write/protobuf.hpp"
#include "export/remote_write/series_state.hpp"

#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

using namespace plugmon::agent;
using namespace plugmon::agent::remote_write;

namespace {

/// 1000 series (10 plugins x 10 ops x 10 tables) after one window of 200 lognormal queries each.
series_state make_state() {
    series_options o;
    o.external_labels = {{"host", "bench-host"}};
    o.query_buckets = config::default_buckets();
    series_state st(o);
    window_batch w;
    w.bucket_start = std::chrono::system_clock::now();
    w.length = std::chrono::seconds{10};
    std::mt19937_64 rng(1);
    std::lognormal_distribution<double> d(std::log(2e6), 1.0);
    for (int p = 0; p < 10; ++p)
        for (int op = 0; op < 10; ++op)
            for (int t = 0; t < 10; ++t) {
                query_rollup r;
                r.plugin = "plugin-" + std::to_string(p);
                r.op = "op-" + std::to_string(op);
                r.table = "table-" + std::to_string(t);
                dd_sketch s;
                for (int i = 0; i < 200; ++i) s.add(std::uint64_t(d(rng)) + 1);
                fill_durations(r, s);
                w.queries.push_back(std::move(r));
            }
    st.apply(w);
    return st;
}

void run(benchmark::State& state, bool native, bool compress) {
    const series_state st = make_state();
    std::size_t samples = 0, raw_bytes = 0, wire_bytes = 0;
    for (auto _ : state) {
        const auto series = st.render(native);
        std::string raw;
        encode_write_request(series, raw);
        std::string wire = compress ? snappy_compress(raw) : raw;
        benchmark::DoNotOptimize(wire.data());
        samples = 0;
        for (const auto& s : series) samples += s.sample_count();
        raw_bytes = raw.size();
        wire_bytes = wire.size();
    }
    state.counters["samples/s"] = benchmark::Counter(double(samples) * double(state.iterations()),
                                                     benchmark::Counter::kIsRate);
    state.counters["samples"] = double(samples);
    state.counters["raw_B/sample"] = double(raw_bytes) / double(samples);
    state.counters["wire_B/sample"] = double(wire_bytes) / double(samples);
}

void BM_remote_write_native_snappy(benchmark::State& s) { run(s, true, true); }
void BM_remote_write_native_encode_only(benchmark::State& s) { run(s, true, false); }
void BM_remote_write_classic_snappy(benchmark::State& s) { run(s, false, true); }
void BM_remote_write_classic_encode_only(benchmark::State& s) { run(s, false, false); }

}  // namespace

BENCHMARK(BM_remote_write_native_snappy)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_remote_write_native_encode_only)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_remote_write_classic_snappy)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_remote_write_classic_encode_only)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
