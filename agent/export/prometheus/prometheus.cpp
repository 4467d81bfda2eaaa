// Writes the exposition directly into one string: no intermediate objects per series. Each
// series' labels are escaped once per render into a prefix that all its lines share, the metric
// names and `le` tails are made once per render, and the body is reserved from an upper bound.
#include "export/prometheus/prometheus.hpp"

#include "common/exposition.hpp"

#include <zlib.h>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace plugmon::agent {

namespace {

using namespace exposition;

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
        out += sum;
        out += prefix;
        out += "} ";
        append_seconds(out, h.sum_ns());
        out.push_back('\n');
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

constexpr std::string_view status_ok = ",status=\"ok\"} ", status_error = ",status=\"error\"} ";

/// Bytes outside the per-series lines (HELP and TYPE lines, the agent's own metrics, about 6 KiB),
/// with room to spare: too low a bound would cost a reallocation of the whole body.
constexpr std::size_t fixed_body_bytes = 16 * 1024;

/// The body of render_metrics: into `out`, handing it to `sink` in pieces of about `chunk`
/// bytes when there is a sink (then `out` never holds more than a piece), else all of it.
void render_into(std::string& out, const series_store& store, const drain& d, const intake* in,
                 const metrics_sink* sink, std::size_t chunk) {
    const series_store::view v = store.snapshot();
    const auto& b = store.bounds();
    const histogram_family query_h("plugmon_query_duration_seconds", b.query_s);
    const histogram_family execution_h("plugmon_execution_duration_seconds", b.execution_s);

    const prefix_table query_prefix(v.queries, query_labels);
    const prefix_table execution_prefix(v.executions, execution_labels);

    // Reserve an upper bound of the body (values at their longest), so that it is never copied
    // to grow. Pages reserved but never written cost address space, not memory.
    std::size_t bound = fixed_body_bytes;
    const std::size_t query_fixed = 2 * (std::string_view("plugmon_queries_total").size() +
                                         status_error.size() + max_u64_chars + 1) +
                                    std::string_view("plugmon_query_rows_total").size() + 2 +
                                    max_u64_chars + 1 + query_h.fixed_bytes;
    for (std::size_t k = 0; k < v.queries.size(); ++k)
        bound += query_fixed + (3 + query_h.lines) * query_prefix[k].size();
    const std::size_t execution_fixed =
        2 * (std::string_view("plugmon_executions_total").size() + status_error.size() +
             max_u64_chars + 1) +
        std::string_view("plugmon_plugin_cpu_seconds_total").size() + 2 + max_double_chars + 1 +
        execution_h.fixed_bytes;
    for (std::size_t k = 0; k < v.executions.size(); ++k)
        bound += execution_fixed + (3 + execution_h.lines) * execution_prefix[k].size();
    for (const auto& s : v.counters)
        bound += sample_bound("plugmon_plugin_events_total",
                              {{"plugin", s->plugin}, {"event", s->event}});
    for (const auto& s : v.pools)
        bound += 3 * sample_bound("plugmon_pool_connections",
                                  {{"plugin", s->plugin}, {"state", "waiting"}});
    for (const auto& s : v.memories)
        bound +=
            4 * sample_bound("plugmon_plugin_heap_allocated_bytes_total", {{"plugin", s->plugin}});
    const auto producers = d.producers();
    for (const auto& p : producers)
        bound += 7 * sample_bound("plugmon_process_resident_memory_bytes",
                                  {{"pid", "4294967295"}, {"name", p->name()}});
    const auto flush = [&] {
        if (sink != nullptr && out.size() >= chunk) {
            (*sink)(out);
            out.clear();
        }
    };
    if (sink == nullptr) {
        out.reserve(bound);
        advise_huge_pages(out);
    } else {
        out.reserve(chunk + (64u << 10));
    }

    family(out, "plugmon_queries_total", "counter", "Queries recorded by plugins, by outcome.");
    for (std::size_t k = 0; k < v.queries.size(); ++k) {
        const query_series& s = *v.queries[k];
        line(out, "plugmon_queries_total", query_prefix[k], status_ok, s.ok.get());
        if (const std::uint64_t e = s.error.get())
            line(out, "plugmon_queries_total", query_prefix[k], status_error, e);
        flush();
    }
    family(out, "plugmon_query_rows_total", "counter", "Rows returned or affected by queries.");
    for (std::size_t k = 0; k < v.queries.size(); ++k) {
        line(out, "plugmon_query_rows_total", query_prefix[k], "} ", v.queries[k]->rows.get());
        flush();
    }
    family(out, "plugmon_query_duration_seconds", "histogram", "Query duration.");
    for (std::size_t k = 0; k < v.queries.size(); ++k) {
        query_h.lines_of(out, query_prefix[k], v.queries[k]->duration);
        flush();
    }

    family(out, "plugmon_executions_total", "counter", "Plugin executions, by outcome.");
    for (std::size_t k = 0; k < v.executions.size(); ++k) {
        const execution_series& s = *v.executions[k];
        line(out, "plugmon_executions_total", execution_prefix[k], status_ok, s.ok.get());
        if (const std::uint64_t e = s.error.get())
            line(out, "plugmon_executions_total", execution_prefix[k], status_error, e);
        flush();
    }
    family(out, "plugmon_execution_duration_seconds", "histogram", "Plugin execution wall time.");
    for (std::size_t k = 0; k < v.executions.size(); ++k) {
        execution_h.lines_of(out, execution_prefix[k], v.executions[k]->duration);
        flush();
    }
    flush();
    family(out, "plugmon_plugin_cpu_seconds_total", "counter",
           "Thread CPU time spent inside plugin executions.");
    for (const auto& s : v.executions)
        sample_seconds(out, "plugmon_plugin_cpu_seconds_total",
                       {{"plugin", s->plugin}, {"tenant", s->tenant}}, s->cpu_ns.get());

    flush();
    family(out, "plugmon_plugin_events_total", "counter", "Named plugin event counters.");
    for (const auto& s : v.counters)
        sample(out, "plugmon_plugin_events_total", {{"plugin", s->plugin}, {"event", s->event}},
               s->total.get());
    family(out, "plugmon_pool_connections", "gauge",
           "Connection-pool connections by state, last sample of each producer, summed.");
    for (const auto& s : v.pools) {
        sample(out, "plugmon_pool_connections", {{"plugin", s->plugin}, {"state", "in_use"}},
               s->in_use.get());
        sample(out, "plugmon_pool_connections", {{"plugin", s->plugin}, {"state", "idle"}},
               s->idle.get());
        sample(out, "plugmon_pool_connections", {{"plugin", s->plugin}, {"state", "waiting"}},
               s->waiting.get());
    }

    family(out, "plugmon_plugin_heap_allocated_bytes_total", "counter",
           "Heap bytes allocated by the plugin (plugmon::alloc), summed over processes.");
    for (const auto& s : v.memories)
        sample(out, "plugmon_plugin_heap_allocated_bytes_total", {{"plugin", s->plugin}},
               s->allocated.get());
    family(out, "plugmon_plugin_heap_freed_bytes_total", "counter",
           "Heap bytes the plugin allocated that were freed (or went with their process).");
    for (const auto& s : v.memories)
        sample(out, "plugmon_plugin_heap_freed_bytes_total", {{"plugin", s->plugin}},
               s->freed.get());
    family(out, "plugmon_plugin_heap_live_bytes", "gauge", "Heap bytes the plugin holds now.");
    for (const auto& s : v.memories) {
        const std::uint64_t al = s->allocated.get(), fr = s->freed.get();
        sample(out, "plugmon_plugin_heap_live_bytes", {{"plugin", s->plugin}},
               al >= fr ? al - fr : 0);
    }
    family(out, "plugmon_plugin_leak_suspected", "gauge",
           "1 when the plugin's live heap grew steadily over leak_window (linear fit), else 0.");
    for (const auto& s : v.memories)
        sample(out, "plugmon_plugin_leak_suspected", {{"plugin", s->plugin}},
               s->leak.suspected.load(std::memory_order_relaxed) ? 1 : 0);

    // Plugin processes, from their probes' once-a-second samples (attached, sampled ones only).
    std::vector<std::pair<std::string, const producer*>> procs;
    for (const auto& p : producers)
        if (p->state() == producer_state::attached && !p->gone() &&
            p->resources().sampled.load(std::memory_order_acquire))
            procs.emplace_back(std::to_string(p->pid()), p.get());
    const auto per_process = [&](const char* name, const char* type, const char* help, auto value) {
        family(out, name, type, help);
        for (const auto& [pid, p] : procs)
            value(name, label_list{{"pid", pid}, {"name", p->name()}}, *p);
    };
    per_process("plugmon_process_resident_memory_bytes", "gauge",
                "Resident memory of the plugin process.",
                [&](const char* n, label_list l, const producer& p) {
                    sample(out, n, l, p.resources().rss_bytes.get());
                });
    per_process("plugmon_process_cpu_seconds_total", "counter",
                "CPU time (user + system) of the plugin process.",
                [&](const char* n, label_list l, const producer& p) {
                    sample_seconds(out, n, l, p.resources().cpu_ns.get());
                });
    per_process("plugmon_process_open_fds", "gauge", "Open file descriptors of the plugin process.",
                [&](const char* n, label_list l, const producer& p) {
                    sample(out, n, l, p.resources().open_fds.get());
                });
    per_process("plugmon_process_threads", "gauge", "Threads of the plugin process.",
                [&](const char* n, label_list l, const producer& p) {
                    sample(out, n, l, p.resources().threads.get());
                });
    per_process("plugmon_process_read_bytes_total", "counter",
                "Bytes the plugin process read from storage.",
                [&](const char* n, label_list l, const producer& p) {
                    sample(out, n, l, p.resources().read_bytes.get());
                });
    per_process("plugmon_process_write_bytes_total", "counter",
                "Bytes the plugin process wrote to storage.",
                [&](const char* n, label_list l, const producer& p) {
                    sample(out, n, l, p.resources().write_bytes.get());
                });
    per_process("plugmon_process_leak_suspected", "gauge",
                "1 when the process's resident memory grew steadily over leak_window, else 0.",
                [&](const char* n, label_list l, const producer& p) {
                    sample(out, n, l,
                           p.resources().leak.suspected.load(std::memory_order_relaxed) ? 1 : 0);
                });

    const drain_totals& t = d.totals();
    family(out, "plugmon_ring_events_dropped_total", "counter",
           "Events recorded by probes that were not aggregated, by reason.");
    sample(out, "plugmon_ring_events_dropped_total", {{"reason", "full"}}, t.full.get());
    sample(out, "plugmon_ring_events_dropped_total", {{"reason", "torn"}}, t.torn.get());
    sample(out, "plugmon_ring_events_dropped_total", {{"reason", "invalid"}}, t.invalid.get());
    family(out, "plugmon_agent_events_folded_total", "counter",
           "Events aggregated under __overflow__ labels because the series budget was reached "
           "(counted as drained too: they are not lost, only their labels are).");
    sample(out, "plugmon_agent_events_folded_total", {}, t.folded.get());
    family(out, "plugmon_agent_series_budget", "gauge", "Series budget, total and per plugin.");
    sample(out, "plugmon_agent_series_budget", {{"scope", "total"}}, store.budget().total);
    sample(out, "plugmon_agent_series_budget", {{"scope", "per_plugin"}},
           store.budget().per_plugin);
    family(out, "plugmon_agent_series_folded_total", "counter",
           "Label sets refused a series of their own by the budget and folded into __overflow__.");
    sample(out, "plugmon_agent_series_folded_total", {}, store.folded_label_sets());
    family(out, "plugmon_agent_series_expired_total", "counter",
           "Series forgotten after series_expiry_windows flush windows without events.");
    sample(out, "plugmon_agent_series_expired_total", {}, store.expired_series());
    family(out, "plugmon_agent_slow_queries_total", "counter",
           "Queries at or above their plugin's slow_query_threshold.");
    sample(out, "plugmon_agent_slow_queries_total", {}, t.slow.get());
    family(out, "plugmon_agent_slow_queries_unstored_total", "counter",
           "Slow-query samples not handed to the store: beyond the per-window cap (still counted "
           "in plugmon_agent_slow_queries_total).");
    sample(out, "plugmon_agent_slow_queries_unstored_total", {}, t.slow_unstored.get());
    family(out, "plugmon_agent_resource_samples_total", "counter",
           "Process and heap samples from the probes' helper threads (not part of drained).");
    sample(out, "plugmon_agent_resource_samples_total", {}, t.resource_samples.get());
    family(out, "plugmon_agent_windows_total", "counter", "Flush windows closed.");
    sample(out, "plugmon_agent_windows_total", {}, t.windows.get());
    family(out, "plugmon_agent_events_drained_total", "counter",
           "Events read from producer segments and aggregated.");
    sample(out, "plugmon_agent_events_drained_total", {}, t.drained.get());

    std::uint64_t attached = 0, quarantined = 0;
    for (const auto& p : producers) {
        if (p->state() == producer_state::attached && !p->gone()) ++attached;
        if (p->state() == producer_state::quarantined) ++quarantined;
    }
    family(out, "plugmon_producers", "gauge", "Registered producer processes, by state.");
    sample(out, "plugmon_producers", {{"state", "attached"}}, attached);
    sample(out, "plugmon_producers", {{"state", "quarantined"}}, quarantined);
    family(out, "plugmon_agent_producers_registered_total", "counter",
           "Producer registrations accepted (re-registrations included).");
    sample(out, "plugmon_agent_producers_registered_total", {}, t.producers_registered.get());
    family(out, "plugmon_ring_used_ratio", "gauge", "Fill ratio of the fullest producer lane.");
    out += "plugmon_ring_used_ratio ";
    append_double(out, double(t.ring_used_ppm.load()) / 1e6);
    out.push_back('\n');
    family(out, "plugmon_ring_backlog_events", "gauge", "Events published but not yet drained.");
    sample(out, "plugmon_ring_backlog_events", {}, t.backlog.load());

    if (in != nullptr) {
        const intake_totals& it = in->totals();
        family(out, "plugmon_agent_registrations_refused_total", "counter",
               "Producer registrations refused, by reason.");
        for (std::size_t r = 1; r < it.rejected.size(); ++r)
            sample(out, "plugmon_agent_registrations_refused_total",
                   {{"reason", std::string("segment_") + to_string(reject_reason(r))}},
                   it.rejected[r].get());
        sample(out, "plugmon_agent_registrations_refused_total", {{"reason", "protocol"}},
               it.refused_protocol.get());
        sample(out, "plugmon_agent_registrations_refused_total", {{"reason", "limit"}},
               it.refused_limit.get());
        sample(out, "plugmon_agent_registrations_refused_total", {{"reason", "duplicate"}},
               it.refused_duplicate.get());
    }
    family(out, "plugmon_agent_series", "gauge", "Series held in memory.");
    sample(out, "plugmon_agent_series", {}, store.series_count());
}

class core_source final : public metrics_source {
public:
    core_source(const series_store& store, const drain& d, const intake* in)
        : store_(store), drain_(d), in_(in) {}
    void render(metrics_text& t) const override {
        render_into(t.out, store_, drain_, in_, t.sink(), t.chunk());
        t.flush_if_full();
    }

private:
    const series_store& store_;
    const drain& drain_;
    const intake* in_;
};

void render_all(const metrics_registry& sources, metrics_text& t) {
    for (const auto& s : sources.sources()) s->render(t);
    t.flush();
}
}  // namespace

std::shared_ptr<const metrics_source> make_core_metrics_source(const series_store& store,
                                                               const drain& d, const intake* in) {
    return std::make_shared<core_source>(store, d, in);
}

metrics_registry core_metrics(const series_store& store, const drain& d, const intake* in) {
    metrics_registry r;
    r.add(make_core_metrics_source(store, d, in));
    return r;
}

std::string render_metrics(const metrics_registry& sources) {
    std::string out;
    metrics_text t(out);
    render_all(sources, t);
    return out;
}

void render_metrics(const metrics_registry& sources, const metrics_sink& sink,
                    std::size_t chunk_bytes) {
    std::string out;
    metrics_text t(out, &sink, std::max<std::size_t>(chunk_bytes, 4096));
    render_all(sources, t);
}

std::string render_metrics_gzip(const metrics_registry& sources) {
    z_stream z{};
    // windowBits 15 + 16: a gzip header and trailer, as Content-Encoding: gzip wants
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out;
    const auto pump = [&](std::string_view piece, int mode) {
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
        z.avail_in = static_cast<uInt>(piece.size());
        do {
            const std::size_t before = out.size();
            out.resize(before + (256u << 10));
            z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
            z.avail_out = 256u << 10;
            const int rc = deflate(&z, mode);
            out.resize(out.size() - z.avail_out);
            if (rc == Z_STREAM_ERROR) throw std::runtime_error("deflate failed");
            if (mode == Z_FINISH && rc == Z_STREAM_END) return;
        } while (z.avail_in != 0 || z.avail_out == 0 || mode == Z_FINISH);
    };
    try {
        render_metrics(
            sources, [&](std::string_view piece) { pump(piece, Z_NO_FLUSH); }, 1u << 20);
        pump({}, Z_FINISH);
    } catch (...) {
        deflateEnd(&z);
        throw;
    }
    deflateEnd(&z);
    return out;
}

}  // namespace plugmon::agent
