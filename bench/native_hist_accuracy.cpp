// Measures how far fleet-wide quantiles land from the exact ones when three agents export their
// query durations as native histograms re-bucketed from the sketch (schemas 8, 7, 6; PromQL 2.42's
// histogram_quantile arithmetic), against the sketch's own quantile and a hypothetical base-2
// sketch mapping (gamma = 2^(2^-7), exported exactly); and how many buckets each needs.
//
//   native_hist_accuracy [values per agent = 200000] [seeds = 5]
#include "export/native_histogram/native_histogram.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace plugmon::agent;
using rng_t = std::mt19937_64;
using draw_fn = std::function<double(rng_t&)>;  // a duration in ns before scaling and clamping

constexpr double min_ns = 1e3, max_ns = 1e10;  // 1 us .. 10 s
constexpr std::size_t window_values = 10000;   // values per flush window
constexpr double quantiles[] = {0.5, 0.9, 0.99, 0.999};
constexpr std::int32_t schemas[] = {8, 7, 6};
constexpr std::int32_t base2_schema = 7;

struct distribution {
    std::string name;
    draw_fn draw;
    bool scaled = true;  ///< the three agents' values differ by a factor (1, 1.25, 0.8)
};

std::vector<distribution> distributions() {
    auto lognormal = [](double median_ns, double sigma) {
        return [=](rng_t& r) {
            return std::lognormal_distribution<double>(std::log(median_ns), sigma)(r);
        };
    };
    std::vector<double> points;  // 25 latencies, log-spaced: point masses (cached answers)
    for (int i = 0; i < 25; ++i) points.push_back(min_ns * std::pow(max_ns / min_ns, i / 24.0));
    return {
        {"lognormal 1ms s=0.5", lognormal(1e6, 0.5)},
        {"lognormal 1ms s=1", lognormal(1e6, 1.0)},
        {"lognormal 5ms s=2", lognormal(5e6, 2.0)},
        {"bimodal 300us/80ms",
         [=](rng_t& r) {
             return std::bernoulli_distribution(0.8)(r) ? lognormal(3e5, 0.3)(r)
                                                        : lognormal(8e7, 0.4)(r);
         }},
        {"uniform 1us..10s",
         [](rng_t& r) { return std::uniform_real_distribution<double>(min_ns, max_ns)(r); }},
        {"log-uniform 1us..10s",
         [](rng_t& r) {
             return std::exp(
                 std::uniform_real_distribution<double>(std::log(min_ns), std::log(max_ns))(r));
         }},
        {"2^e ns point masses",  // the sketch's worst case: each value at its bin's lower edge
         [](rng_t& r) { return std::exp2(std::uniform_int_distribution<int>(10, 33)(r)); }, false},
        {"25 point masses",
         [points](rng_t& r) {
             return points[std::uniform_int_distribution<std::size_t>(0, points.size() - 1)(r)];
         }},
    };
}

/// The hypothetical base-2 sketch: native buckets at schema 7 of the value in seconds.
using base2_sketch = std::map<std::int32_t, std::uint64_t>;

/// Its agent/SQL quantile: the bucket holding rank floor(q (n - 1)), represented by
/// 2 gamma^k / (gamma + 1) (relative error (gamma - 1) / (gamma + 1) on both edges), clamped.
double base2_quantile(const base2_sketch& s, std::uint64_t n, double q, double lo, double hi) {
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n - 1));
    std::uint64_t seen = 0;
    const double gamma = std::exp2(std::exp2(-base2_schema));
    for (const auto& [k, c] : s) {
        seen += c;
        if (seen > rank) {
            const double v = 2 * native::bucket_upper_bound(k, base2_schema) / (gamma + 1);
            return std::clamp(v, lo, hi);
        }
    }
    return hi;
}

native::histogram as_histogram(const base2_sketch& s, std::uint64_t n) {
    native::cumulative c(base2_schema);
    c.assign({s.begin(), s.end()}, 0, n, 0);
    return c.snapshot();
}

std::size_t varint_bytes(std::uint64_t v) {
    std::size_t b = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++b;
    }
    return b;
}

/// The bytes of the native part of an io.prometheus.client.Histogram (schema, zero threshold and
/// count, spans, packed zigzag deltas), as the protobuf exposition and remote write carry them.
std::size_t native_bytes(const native::histogram& h) {
    std::size_t b = 2 + 9 + 1 + varint_bytes(h.zero_count);
    for (const auto& s : h.positive_spans) {
        const auto zz = static_cast<std::uint32_t>((s.offset << 1) ^ (s.offset >> 31));
        const std::size_t body = 1 + varint_bytes(zz) + 1 + varint_bytes(s.length);
        b += 1 + varint_bytes(body) + body;
    }
    std::size_t packed = 0;
    for (std::int64_t d : h.positive_deltas)
        packed += varint_bytes(static_cast<std::uint64_t>((d << 1) ^ (d >> 63)));
    return b + 1 + varint_bytes(packed) + packed;
}

double rel(double got, double exact) { return std::fabs(got - exact) / exact; }

struct figures {
    // Max relative error over seeds and quantiles, per method.
    double sketch = 0, base2_agent = 0, base2_promql = 0;
    double rebucket[3] = {0, 0, 0};
    std::size_t sketch_bins = 0, base2_bins = 0, base2_bytes = 0;
    std::size_t native_buckets[3] = {0, 0, 0}, native_deltas[3] = {0, 0, 0},
                native_bytes_[3] = {0, 0, 0};
    std::vector<double> add_ns;  // cumulative::add per window at schema 8
    std::size_t memory = 0;      // one agent's cumulative at schema 8
};

/// One agent: its windows into a merged sketch, cumulative histograms and the base-2 sketch.
struct agent_state {
    dd_sketch sketch;
    std::vector<native::cumulative> native;
    base2_sketch base2;
    agent_state() {
        for (std::int32_t s : schemas) native.emplace_back(s);
    }
};

void run_agent(agent_state& a, const draw_fn& draw, double scale, std::size_t n, rng_t& rng,
               std::vector<std::uint64_t>& raw, figures& f) {
    dd_sketch window;
    for (std::size_t done = 0; done < n;) {
        window.clear();
        for (std::size_t i = 0; i < window_values && done < n; ++i, ++done) {
            const auto v =
                static_cast<std::uint64_t>(std::clamp(draw(rng) * scale, min_ns, max_ns));
            raw.push_back(v);
            window.add(v);
            ++a.base2[native::bucket_index(static_cast<double>(v) / 1e9, base2_schema)];
        }
        a.sketch.merge(window);
        for (std::size_t s = 0; s < a.native.size(); ++s) {
            const auto t0 = std::chrono::steady_clock::now();
            a.native[s].add(window);
            const auto t1 = std::chrono::steady_clock::now();
            if (s == 0)
                f.add_ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        }
    }
    f.memory = std::max(f.memory, a.native[0].memory_bytes());
}

void one_seed(const distribution& d, std::size_t n, std::uint64_t seed, figures& f) {
    rng_t rng(seed);
    std::vector<std::uint64_t> raw;
    raw.reserve(3 * n);
    agent_state agents[3];
    const double scale[3] = {1.0, 1.25, 0.8};  // three hosts, not quite alike
    for (int a = 0; a < 3; ++a)
        run_agent(agents[a], d.draw, d.scaled ? scale[a] : 1.0, n, rng, raw, f);
    std::sort(raw.begin(), raw.end());
    dd_sketch fleet = agents[0].sketch;
    fleet.merge(agents[1].sketch);
    fleet.merge(agents[2].sketch);
    base2_sketch b2 = agents[0].base2;
    for (int a = 1; a < 3; ++a)
        for (const auto& [k, c] : agents[a].base2) b2[k] += c;
    const double total = static_cast<double>(raw.size());
    const double lo = static_cast<double>(raw.front()) / 1e9,
                 hi = static_cast<double>(raw.back()) / 1e9;
    native::histogram fleet_native[3];
    for (int s = 0; s < 3; ++s) {
        // sum() across hosts: PromQL adds the histograms bucket by bucket.
        fleet_native[s] =
            native::add(native::add(agents[0].native[s].snapshot(), agents[1].native[s].snapshot()),
                        agents[2].native[s].snapshot());
    }
    const native::histogram b2h = as_histogram(b2, raw.size());
    for (double q : quantiles) {
        // The sketch's own definition (0-based rank floor(q (n-1))) and PromQL's (the smallest
        // value whose cumulative count reaches q n).
        const double exact_sketch =
            static_cast<double>(raw[static_cast<std::size_t>(q * (total - 1))]) / 1e9;
        const double exact_promql =
            static_cast<double>(raw[static_cast<std::size_t>(std::ceil(q * total)) - 1]) / 1e9;
        f.sketch =
            std::max(f.sketch, rel(static_cast<double>(fleet.quantile(q)) / 1e9, exact_sketch));
        for (int s = 0; s < 3; ++s)
            f.rebucket[s] = std::max(
                f.rebucket[s], rel(native::promql_quantile(q, fleet_native[s]), exact_promql));
        f.base2_agent =
            std::max(f.base2_agent, rel(base2_quantile(b2, raw.size(), q, lo, hi), exact_sketch));
        f.base2_promql =
            std::max(f.base2_promql, rel(native::promql_quantile(q, b2h), exact_promql));
    }
    std::size_t bins = 0;
    for (std::uint32_t i = 0; i < dd_sketch::index_limit; ++i) bins += fleet.bin(i) != 0;
    f.sketch_bins = std::max(f.sketch_bins, bins);
    f.base2_bins = std::max(f.base2_bins, b2.size());
    f.base2_bytes = std::max(f.base2_bytes, native_bytes(b2h));
    for (int s = 0; s < 3; ++s) {
        std::size_t nonempty = 0;
        for (std::int64_t run = 0; std::int64_t dl : fleet_native[s].positive_deltas)
            nonempty += (run += dl) != 0;
        f.native_buckets[s] = std::max(f.native_buckets[s], nonempty);
        f.native_deltas[s] = std::max(f.native_deltas[s], fleet_native[s].positive_deltas.size());
        f.native_bytes_[s] = std::max(f.native_bytes_[s], native_bytes(fleet_native[s]));
    }
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

void print_bounds() {
    std::printf("Worst-case bounds: sketch 1/128 = %.3f %%; re-bucketed (1+1/128)*2^(2^-s)-1 =",
                100.0 / 128);
    for (std::int32_t s : schemas)
        std::printf(" s%d %.3f %%", s, 100 * ((1 + 1.0 / 128) * std::exp2(std::exp2(-s)) - 1));
    const double g = std::exp2(std::exp2(-base2_schema));
    std::printf("; base-2 s7 agent (g-1)/(g+1) = %.3f %%, PromQL g-1 = %.3f %%\n\n",
                100 * (g - 1) / (g + 1), 100 * (g - 1));
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
    const int seeds = argc > 2 ? std::atoi(argv[2]) : 5;
    std::printf("3 agents x %zu values (windows of %zu), %d seeds; quantiles p50 p90 p99 p999\n", n,
                window_values, seeds);
    print_bounds();
    std::printf("Max relative error (%%) over seeds and quantiles\n");
    std::printf("%-22s %8s %8s %8s %8s %9s %9s\n", "distribution", "sketch", "rb s8", "rb s7",
                "rb s6", "b2 agent", "b2 PromQL");
    std::vector<figures> all;
    figures worst;
    for (const auto& d : distributions()) {
        figures f;
        for (int s = 0; s < seeds; ++s) one_seed(d, n, 1000 + static_cast<std::uint64_t>(s), f);
        std::printf("%-22s %8.3f %8.3f %8.3f %8.3f %9.3f %9.3f\n", d.name.c_str(), 100 * f.sketch,
                    100 * f.rebucket[0], 100 * f.rebucket[1], 100 * f.rebucket[2],
                    100 * f.base2_agent, 100 * f.base2_promql);
        worst.sketch = std::max(worst.sketch, f.sketch);
        for (int s = 0; s < 3; ++s) worst.rebucket[s] = std::max(worst.rebucket[s], f.rebucket[s]);
        worst.base2_agent = std::max(worst.base2_agent, f.base2_agent);
        worst.base2_promql = std::max(worst.base2_promql, f.base2_promql);
        all.push_back(std::move(f));
    }
    std::printf("%-22s %8.3f %8.3f %8.3f %8.3f %9.3f %9.3f\n\n", "max", 100 * worst.sketch,
                100 * worst.rebucket[0], 100 * worst.rebucket[1], 100 * worst.rebucket[2],
                100 * worst.base2_agent, 100 * worst.base2_promql);
    std::printf(
        "Buckets of the fleet histogram (non-empty; deltas incl. filled gaps; bytes of the "
        "native fields)\n");
    std::printf("%-22s %7s %15s %15s %15s %15s %9s %9s\n", "distribution", "sketch", "s8 bkt/dlt/B",
                "s7 bkt/dlt/B", "s6 bkt/dlt/B", "b2s7 bkt/B", "add ns", "mem B");
    const auto dists = distributions();
    for (std::size_t i = 0; i < all.size(); ++i) {
        const figures& f = all[i];
        char cols[3][32];
        for (int s = 0; s < 3; ++s)
            std::snprintf(cols[s], sizeof cols[s], "%zu/%zu/%zu", f.native_buckets[s],
                          f.native_deltas[s], f.native_bytes_[s]);
        char b2[32];
        std::snprintf(b2, sizeof b2, "%zu/%zu", f.base2_bins, f.base2_bytes);
        std::printf("%-22s %7zu %15s %15s %15s %15s %9.0f %9zu\n", dists[i].name.c_str(),
                    f.sketch_bins, cols[0], cols[1], cols[2], b2, median(f.add_ns), f.memory);
    }
    return 0;
}
