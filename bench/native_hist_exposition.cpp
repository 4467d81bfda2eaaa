// The cost of the protobuf exposition with native histograms at 10 000 query series: one window
// re-bucketed into the native store, its memory, and a /metrics render in protobuf against the
// text render of the same sources (medians of 5, ratio in the same run).
//
//   native_hist_exposition [series = 10000] [values per series = 1000]
#include "export/prometheus/native_store.hpp"
#include "export/prometheus/prometheus.hpp"
#include "export/prometheus/protobuf_exposition.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

using namespace plugmon::agent;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int n_series = argc > 1 ? std::atoi(argv[1]) : 10000;
    const int n_values = argc > 2 ? std::atoi(argv[2]) : 1000;
    const std::vector<double> le{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
    series_registry store{bucket_bounds::from_seconds(le, le)};
    drain drainer{store, drain::options{}};
    native_store natives(8, 0);
    natives.activate();
    std::mt19937_64 rng(1);
    std::lognormal_distribution<double> d(std::log(2e6), 0.7);
    auto w = std::make_shared<window_batch>();
    for (int i = 0; i < n_series; ++i) {
        query_series* s = store.query("plugin-" + std::to_string(i % 20), "SELECT",
                                      "table-" + std::to_string(i), "");
        dd_sketch sk;
        for (int j = 0; j < n_values; ++j) {
            const auto v = static_cast<std::uint64_t>(d(rng));
            s->record(v, false, 1);
            sk.add(v);
        }
        query_rollup r;
        r.plugin = s->plugin;
        r.op = s->op;
        r.table = s->table;
        r.sketch = sk.encode();
        w->queries.push_back(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    natives.consume(w);
    const double consume_ms = ms_since(t0);
    const metrics_registry reg = core_metrics(store, drainer, nullptr);
    std::vector<double> text_ms, pb_ms;
    std::size_t text_bytes = 0, pb_bytes = 0;
    for (int rep = 0; rep < 5; ++rep) {
        auto t = std::chrono::steady_clock::now();
        text_bytes = render_metrics(reg).size();
        text_ms.push_back(ms_since(t));
        t = std::chrono::steady_clock::now();
        pb_bytes = protobuf_exposition::render(reg, natives.query_duration_lookup()).size();
        pb_ms.push_back(ms_since(t));
    }
    std::printf("%d series x %d values (lognormal, median 2 ms, sigma 0.7)\n", n_series, n_values);
    std::printf("native store: one window in %.1f ms; %zu bytes (%.0f per series)\n", consume_ms,
                natives.histogram_bytes(),
                static_cast<double>(natives.histogram_bytes()) / n_series);
    std::printf(
        "render (median of 5): text %.1f ms, %zu bytes; protobuf %.1f ms, %zu bytes; "
        "protobuf/text %.1f\n",
        median(text_ms), text_bytes, median(pb_ms), pb_bytes, median(pb_ms) / median(text_ms));
    return 0;
}
