// Writes the series families directly into the body: no intermediate objects per series. Each
// series' labels are escaped once per render into a prefix that all its lines share, the metric
// names and `le` tails are made once per render, and a body held whole is reserved from an upper
// bound. The body is handed on (metrics_text::flush_if_full) after every series.
#include "export/prometheus/series_metrics.hpp"

#include "common/exposition.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace plugmon::agent {

namespace {

using namespace exposition;

// Every metric name once: the size bound and the lines read the same constant. Each is a
// literal, so data() is NUL-terminated for family().
constexpr std::string_view queries_total = "plugmon_queries_total";
constexpr std::string_view query_rows_total = "plugmon_query_rows_total";
constexpr std::string_view query_duration = "plugmon_query_duration_seconds";
constexpr std::string_view executions_total = "plugmon_executions_total";
constexpr std::string_view execution_duration = "plugmon_execution_duration_seconds";
constexpr std::string_view plugin_cpu_total = "plugmon_plugin_cpu_seconds_total";
constexpr std::string_view plugin_events_total = "plugmon_plugin_events_total";
constexpr std::string_view pool_connections = "plugmon_pool_connections";
constexpr std::string_view heap_allocated_total = "plugmon_plugin_heap_allocated_bytes_total";
constexpr std::string_view heap_freed_total = "plugmon_plugin_heap_freed_bytes_total";
constexpr std::string_view heap_live = "plugmon_plugin_heap_live_bytes";
constexpr std::string_view plugin_leak_suspected = "plugmon_plugin_leak_suspected";
constexpr std::string_view series_budget = "plugmon_agent_series_budget";
constexpr std::string_view series_folded_total = "plugmon_agent_series_folded_total";
constexpr std::string_view series_expired_total = "plugmon_agent_series_expired_total";
constexpr std::string_view series_held = "plugmon_agent_series";

constexpr std::string_view status_ok = ",status=\"ok\"} ", status_error = ",status=\"error\"} ";

/// Room for the HELP and TYPE lines of the series families (about 1.5 KiB).
constexpr std::size_t heads_bytes = 4 * 1024;

/// `# HELP` and `# TYPE` lines of `name`, one of the constants above.
void head(std::string& out, std::string_view name, const char* type, const char* help) {
    family(out, name.data(), type, help);
}

/// The labels of a query series and of an execution series, in exposition order.
std::array<label, 4> query_labels(const query_series& s) {
    return {{{"plugin", s.plugin}, {"op", s.op}, {"table", s.table}, {"tenant", s.tenant}}};
}
std::array<label, 2> execution_labels(const execution_series& s) {
    return {{{"plugin", s.plugin}, {"tenant", s.tenant}}};
}

/// The escaped label prefixes (see append_label_prefix) of a list of series, back to back in one
/// string, made once per render: every family of those series reads them in turn instead of
/// escaping the labels again, and reads them in order instead of chasing each series' strings.
class prefix_table {
public:
    template <class Series, class Labels>
    prefix_table(const std::vector<std::shared_ptr<const Series>>& list, Labels labels_of) {
        std::size_t bytes = 0;  // reserved exactly: no copies left behind by growth
        for (const auto& s : list) bytes += label_prefix_size(labels_of(*s));
        text_.reserve(bytes);
        ends_.reserve(list.size());
        for (const auto& s : list) {
            append_label_prefix(text_, labels_of(*s));
            ends_.push_back(text_.size());
        }
    }
    /// The prefix of the k-th series of the list.
    std::string_view operator[](std::size_t k) const {
        const std::size_t begin = k == 0 ? 0 : ends_[k - 1];
        return std::string_view(text_).substr(begin, ends_[k] - begin);
    }

private:
    std::string text_;
    std::vector<std::size_t> ends_;
};

/// `name` + `prefix` + `tail` (which closes the label set and ends with a space), the value, '\n'.
void line(std::string& out, std::string_view name, std::string_view prefix, std::string_view tail,
          std::uint64_t v) {
    out += name;
    out += prefix;
    out += tail;
    append_u64(out, v);
    out.push_back('\n');
}

/// The same with a duration in ns written in seconds, and the label set closed.
void line_seconds(std::string& out, std::string_view name, std::string_view prefix,
                  std::uint64_t ns) {
    out += name;
    out += prefix;
    out += "} ";
    append_seconds(out, ns);
    out.push_back('\n');
}

/// The strings of one histogram family, made once per render.
struct histogram_family {
    std::string bucket, sum, count;  // metric names
    std::vector<std::string> le;     // `,le="<bound>"} ` per bound, then `,le="+Inf"} `
    std::size_t fixed_bytes = 0;     // upper bound of one series' bytes besides its label prefix
    std::size_t lines = 0;           // lines per series, each holding the prefix once

    histogram_family(std::string_view name, const std::vector<double>& bounds_s)
        : bucket(std::string(name) + "_bucket"), sum(std::string(name) + "_sum"),
          count(std::string(name) + "_count") {
        le.reserve(bounds_s.size() + 1);
        for (std::size_t i = 0; i <= bounds_s.size(); ++i) {
            std::string t = ",le=\"";
            if (i == bounds_s.size())
                t += "+Inf";
            else
                append_double(t, bounds_s[i]);
            t += "\"} ";
            fixed_bytes += bucket.size() + t.size() + max_u64_chars + 1;
            le.push_back(std::move(t));
        }
        fixed_bytes += sum.size() + 2 + max_double_chars + 1 + count.size() + 2 + max_u64_chars + 1;
        lines = le.size() + 2;
    }

    /// The bucket, _sum and _count lines of one series whose label prefix is `prefix`.
    void lines_of(std::string& out, std::string_view prefix, const histogram& h) const {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.size(); ++i) {
            cumulative += h.bucket(i);
            line(out, bucket, prefix, i + 1 == h.size() ? std::string_view(le.back()) : le[i],
                 cumulative);
        }
        line_seconds(out, sum, prefix, h.sum_ns());
        line(out, count, prefix, "} ", cumulative);  // = the +Inf bucket: always in agreement
    }
};

/// Upper bound of one sample line with labels `labels` and a number, for reserving.
std::size_t sample_bound(std::string_view name, label_list labels) {
    return name.size() + label_prefix_size(labels) + 2 + max_double_chars + 1;
}

/// Asks for transparent huge pages under a body big enough that malloc maps it on its own (glibc
/// maps every block of DEFAULT_MMAP_THRESHOLD_MAX = 32 MiB or more, and unmaps it on free): its
/// pages would otherwise be faulted in 4 KiB at a time on every render. At 10k series those 8,000
/// faults were half the render time (scrape_bench: 54 -> 26 ms median). A smaller body comes from
/// the heap, which keeps its pages resident between renders, so it is left alone. Pages are still
/// only taken when written (at most 2 MiB past the end), and the kernel falls back to small pages
/// when it has no huge page at hand. Best effort: a failure changes nothing.
void advise_huge_pages(std::string& out) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::size_t mapped_alone = std::size_t{32} << 20;
    if (out.capacity() < mapped_alone) return;
    static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<std::uintptr_t>(out.data());
    const std::uintptr_t first = (begin + page - 1) & ~(page - 1);
    const std::uintptr_t last = (begin + out.capacity()) & ~(page - 1);
    if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
    (void)out;
#endif
}

/// What every family of one render shares: the snapshot, each query and execution series' escaped
/// label prefix, and the strings of both histogram families.
struct series_render {
    explicit series_render(const series_registry& store)
        : v(store.snapshot()), query_h(query_duration, store.bounds().query_s),
          execution_h(execution_duration, store.bounds().execution_s),
          query_prefix(v.queries, query_labels), execution_prefix(v.executions, execution_labels) {}
    series_registry::view v;
    histogram_family query_h, execution_h;
    prefix_table query_prefix, execution_prefix;

    /// Upper bound of the bytes of every family below (values at their longest).
    std::size_t bound() const {
        std::size_t b = heads_bytes;
        const std::size_t query_fixed =
            2 * (queries_total.size() + status_error.size() + max_u64_chars + 1) +
            query_rows_total.size() + 2 + max_u64_chars + 1 + query_h.fixed_bytes;
        for (std::size_t k = 0; k < v.queries.size(); ++k)
            b += query_fixed + (3 + query_h.lines) * query_prefix[k].size();
        const std::size_t execution_fixed =
            2 * (executions_total.size() + status_error.size() + max_u64_chars + 1) +
            plugin_cpu_total.size() + 2 + max_double_chars + 1 + execution_h.fixed_bytes;
        for (std::size_t k = 0; k < v.executions.size(); ++k)
            b += execution_fixed + (3 + execution_h.lines) * execution_prefix[k].size();
        for (const auto& s : v.counters)
            b += sample_bound(plugin_events_total, {{"plugin", s->plugin}, {"event", s->event}});
        for (const auto& s : v.pools)
            b += 3 * sample_bound(pool_connections, {{"plugin", s->plugin}, {"state", "waiting"}});
        for (const auto& s : v.memories)
            b += 4 * sample_bound(heap_allocated_total, {{"plugin", s->plugin}});
        return b;
    }
};

void render_queries(metrics_text& t, const series_render& r) {
    std::string& out = t.out;
    const auto& list = r.v.queries;
    head(out, queries_total, "counter", "Queries recorded by plugins, by outcome.");
    for (std::size_t k = 0; k < list.size(); ++k) {
        line(out, queries_total, r.query_prefix[k], status_ok, list[k]->ok.get());
        if (const std::uint64_t e = list[k]->error.get())
            line(out, queries_total, r.query_prefix[k], status_error, e);
        t.flush_if_full();
    }
    head(out, query_rows_total, "counter", "Rows returned or affected by queries.");
    for (std::size_t k = 0; k < list.size(); ++k) {
        line(out, query_rows_total, r.query_prefix[k], "} ", list[k]->rows.get());
        t.flush_if_full();
    }
    head(out, query_duration, "histogram", "Query duration.");
    for (std::size_t k = 0; k < list.size(); ++k) {
        r.query_h.lines_of(out, r.query_prefix[k], list[k]->duration);
        t.flush_if_full();
    }
}

void render_executions(metrics_text& t, const series_render& r) {
    std::string& out = t.out;
    const auto& list = r.v.executions;
    head(out, executions_total, "counter", "Plugin executions, by outcome.");
    for (std::size_t k = 0; k < list.size(); ++k) {
        line(out, executions_total, r.execution_prefix[k], status_ok, list[k]->ok.get());
        if (const std::uint64_t e = list[k]->error.get())
            line(out, executions_total, r.execution_prefix[k], status_error, e);
        t.flush_if_full();
    }
    head(out, execution_duration, "histogram", "Plugin execution wall time.");
    for (std::size_t k = 0; k < list.size(); ++k) {
        r.execution_h.lines_of(out, r.execution_prefix[k], list[k]->duration);
        t.flush_if_full();
    }
    head(out, plugin_cpu_total, "counter", "Thread CPU time spent inside plugin executions.");
    for (std::size_t k = 0; k < list.size(); ++k) {
        line_seconds(out, plugin_cpu_total, r.execution_prefix[k], list[k]->cpu_ns.get());
        t.flush_if_full();
    }
}

void render_counters_and_pools(metrics_text& t, const series_render& r) {
    std::string& out = t.out;
    head(out, plugin_events_total, "counter", "Named plugin event counters.");
    for (const auto& s : r.v.counters) {
        sample(out, plugin_events_total, {{"plugin", s->plugin}, {"event", s->event}},
               s->total.get());
        t.flush_if_full();
    }
    head(out, pool_connections, "gauge",
         "Connection-pool connections by state, last sample of each producer, summed.");
    for (const auto& s : r.v.pools) {
        sample(out, pool_connections, {{"plugin", s->plugin}, {"state", "in_use"}},
               s->in_use.get());
        sample(out, pool_connections, {{"plugin", s->plugin}, {"state", "idle"}}, s->idle.get());
        sample(out, pool_connections, {{"plugin", s->plugin}, {"state", "waiting"}},
               s->waiting.get());
        t.flush_if_full();
    }
}

/// One sample per plugin's heap series: `value` of the series, labelled by plugin.
template <class Value>
void heap_family(metrics_text& t, const series_render& r, std::string_view name, const char* type,
                 const char* help, Value value) {
    head(t.out, name, type, help);
    for (const auto& s : r.v.memories) {
        sample(t.out, name, {{"plugin", s->plugin}}, std::uint64_t(value(*s)));
        t.flush_if_full();
    }
}

void render_heap(metrics_text& t, const series_render& r) {
    heap_family(t, r, heap_allocated_total, "counter",
                "Heap bytes allocated by the plugin (plugmon::alloc), summed over processes.",
                [](const memory_series& s) { return s.allocated.get(); });
    heap_family(t, r, heap_freed_total, "counter",
                "Heap bytes the plugin allocated that were freed (or went with their process).",
                [](const memory_series& s) { return s.freed.get(); });
    heap_family(t, r, heap_live, "gauge", "Heap bytes the plugin holds now.",
                [](const memory_series& s) {
                    const std::uint64_t al = s.allocated.get(), fr = s.freed.get();
                    return al >= fr ? al - fr : 0;
                });
    heap_family(
        t, r, plugin_leak_suspected, "gauge",
        "1 when the plugin's live heap grew steadily over leak_window (linear fit), else 0.",
        [](const memory_series& s) { return s.leak.suspected.load(std::memory_order_relaxed); });
}

class series_source final : public metrics_source {
public:
    explicit series_source(const series_registry& store) : store_(store) {}
    void render(metrics_text& t) const override {
        const series_render r(store_);
        if (t.sink() == nullptr) {
            // Held whole: reserve an upper bound on top of the room the framing reserved for the
            // other sources, so that the body is never copied to grow. Pages reserved but never
            // written cost address space, not memory.
            t.out.reserve(t.out.capacity() + r.bound());
            advise_huge_pages(t.out);
        }
        render_queries(t, r);
        render_executions(t, r);
        render_counters_and_pools(t, r);
        render_heap(t, r);
    }

private:
    const series_registry& store_;
};

class series_store_source final : public metrics_source {
public:
    explicit series_store_source(const series_registry& store) : store_(store) {}
    void render(metrics_text& t) const override {
        std::string& out = t.out;
        head(out, series_budget, "gauge", "Series budget, total and per plugin.");
        sample(out, series_budget, {{"scope", "total"}}, store_.budget().total);
        sample(out, series_budget, {{"scope", "per_plugin"}}, store_.budget().per_plugin);
        head(out, series_folded_total, "counter",
             "Label sets refused a series of their own by the budget and folded into "
             "__overflow__.");
        sample(out, series_folded_total, {}, store_.folded_label_sets());
        // held first: an expiry counts what it forgot before it lets go of the registry's lock,
        // so a scrape never shows the series gone and not yet counted as expired
        const auto held = std::uint64_t(store_.series_count());
        const std::uint64_t expired = store_.expired_series();
        head(out, series_expired_total, "counter",
             "Series forgotten after series_expiry_windows flush windows without events.");
        sample(out, series_expired_total, {}, expired);
        head(out, series_held, "gauge", "Series held in memory.");
        sample(out, series_held, {}, held);
        t.flush_if_full();
    }

private:
    const series_registry& store_;
};

}  // namespace

std::shared_ptr<const metrics_source> make_series_metrics_source(const series_registry& store) {
    return std::make_shared<series_source>(store);
}

std::shared_ptr<const metrics_source> make_series_store_metrics_source(
    const series_registry& store) {
    return std::make_shared<series_store_source>(store);
}

}  // namespace plugmon::agent
