// Per-group figures of every rule kind, merged from whole closed windows.
#include "alert/engine/measure.hpp"

#include "aggregate/sketch.hpp"
#include "alert/rules/rules.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

namespace plugmon::agent::alert {

namespace {

/// Where a kind's rows come from.
enum class family { queries, executions, heaps, leaks, processes, pools, drops, live };

family family_of(rule_kind k) {
    switch (k) {
        case rule_kind::error_ratio:
        case rule_kind::latency_quantile:
        case rule_kind::slow_rate:
            return family::queries;
        case rule_kind::cpu_rate:
            return family::executions;
        case rule_kind::heap_bytes:
            return family::heaps;
        case rule_kind::heap_leak:
            return family::leaks;
        case rule_kind::process_rss:
        case rule_kind::process_fds:
        case rule_kind::process_threads:
            return family::processes;
        case rule_kind::pool_utilization:
        case rule_kind::pool_waiting:
            return family::pools;
        case rule_kind::ring_drops:
            return family::drops;
        case rule_kind::store_down:
        case rule_kind::watchdog:
            return family::live;
    }
    return family::live;
}

/// Gauges: only the newest window counts.
bool latest_only(family f) {
    return f != family::queries && f != family::executions && f != family::drops;
}

/// Up to four label values of one row, in labels_of() order.
using row_labels = std::array<std::string_view, 4>;

}  // namespace

std::string group_key_of(const rule& r, const label_set& labels) {
    std::string key;
    for (const auto& g : r.group_by) {
        const auto it = labels.find(g);
        if (it != labels.end()) key.append(it->second);
        key.push_back('\x1f');
    }
    return key;
}

/// One group's sums within one window (or merged over several).
struct window_history::accum {
    label_set group;
    std::uint64_t calls = 0, errors = 0, slow = 0, cpu_ns = 0;
    double gauge = 0, limit = 0;  ///< gauges: the value and what it is measured against
    std::optional<dd_sketch> sketch;
    std::uint64_t first_drops = 0, last_drops = 0;
    bool seen_first = false;

    void merge(const accum& o) {
        calls += o.calls;
        errors += o.errors;
        slow += o.slow;
        cpu_ns += o.cpu_ns;
        gauge = o.gauge;
        limit = o.limit;
        if (o.sketch) {
            if (!sketch) sketch.emplace();
            sketch->merge(*o.sketch);
        }
        if (!seen_first) first_drops = o.first_drops;
        seen_first = true;
        last_drops = o.last_drops;
    }
};

struct window_history::cached_window {
    window_ptr w;
    std::size_t bytes = 0;  ///< of the group maps in `views`
    std::unordered_map<std::string, group_map> views;
    std::vector<std::optional<dd_sketch>> sketches;  ///< decoded lazily, per query row

    const dd_sketch* sketch(std::size_t i) {
        if (sketches.empty()) sketches.resize(w->queries.size());
        if (!sketches[i]) {
            auto s = dd_sketch::try_decode(w->queries[i].sketch);
            sketches[i] = s ? std::move(*s) : dd_sketch{};
        }
        return &*sketches[i];
    }
};

void window_history::add(window_ptr w) {
    auto c = std::make_shared<cached_window>();
    c->w = std::move(w);
    windows_.push_back(std::move(c));
    const time_point end = now();
    while (!windows_.empty() && windows_.front()->w->bucket_start + keep_ < end) {
        cache_bytes_ -= windows_.front()->bytes;
        windows_.pop_front();
    }
    results_.clear();
}

time_point window_history::now() const {
    if (windows_.empty()) return {};
    const window_batch& w = *windows_.back()->w;
    return w.bucket_start +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(w.length);
}

namespace {

/// Visits every row of a window for a family with its label values; `f(labels, row_index)`.
template <class F>
void for_each_row(const window_batch& w, family fam, F&& f) {
    switch (fam) {
        case family::queries:
            for (std::size_t i = 0; i < w.queries.size(); ++i) {
                const auto& q = w.queries[i];
                f(row_labels{q.plugin, q.op, q.table, q.tenant}, i);
            }
            break;
        case family::executions:
            for (std::size_t i = 0; i < w.executions.size(); ++i)
                f(row_labels{w.executions[i].plugin, w.executions[i].tenant}, i);
            break;
        case family::heaps:
            for (std::size_t i = 0; i < w.resources.size(); ++i)
                if (!w.resources[i].plugin.empty()) f(row_labels{w.resources[i].plugin}, i);
            break;
        case family::leaks:
            for (std::size_t i = 0; i < w.leaks.size(); ++i)
                if (!w.leaks[i].plugin.empty()) f(row_labels{w.leaks[i].plugin}, i);
            break;
        case family::pools:
            for (std::size_t i = 0; i < w.pools.size(); ++i) f(row_labels{w.pools[i].plugin}, i);
            break;
        case family::processes:
        case family::drops:
            break;  // need the pid as text: see process_rows
        case family::live:
            break;
    }
}

bool selected(const rule& r, const std::vector<std::string>& names, const row_labels& values) {
    for (const auto& [label, pattern] : r.select) {
        const auto it = std::find(names.begin(), names.end(), label);
        if (it == names.end()) return false;
        if (!glob_match(pattern, values[std::size_t(it - names.begin())])) return false;
    }
    return true;
}

/// The group key (values joined by \x1f) and the group's labels.
std::string group_key(const rule& r, const std::vector<std::string>& names,
                      const row_labels& values, label_set* labels) {
    std::string key;
    for (const auto& g : r.group_by) {
        const auto it = std::find(names.begin(), names.end(), g);
        const std::string_view v =
            it == names.end() ? std::string_view() : values[std::size_t(it - names.begin())];
        key.append(v);
        key.push_back('\x1f');
        if (labels != nullptr) labels->emplace(g, std::string(v));
    }
    return key;
}

}  // namespace

void window_history::fill_groups(cached_window& c, const rule& r, group_map& out) {
    const window_batch& w = *c.w;
    const family fam = family_of(r.kind);
    const auto& names = labels_of(r.kind);
    auto slot = [&](const row_labels& values) -> accum& {
        std::string key = group_key(r, names, values, nullptr);
        auto it = out.find(key);
        if (it == out.end()) {
            it = out.emplace(std::move(key), accum{}).first;
            group_key(r, names, values, &it->second.group);
        }
        return it->second;
    };
    if (fam == family::processes || fam == family::drops) {
        auto process_row = [&](const std::string& process, int pid) {
            const std::string pid_text = std::to_string(pid);
            const row_labels values{process, pid_text};
            return selected(r, names, values) ? &slot(values) : nullptr;
        };
        if (fam == family::drops) {
            for (const auto& d : w.drops)
                if (accum* a = process_row(d.process, d.pid)) {
                    a->first_drops += d.dropped_total;
                    a->last_drops += d.dropped_total;
                }
            return;
        }
        for (const auto& p : w.resources) {
            if (p.pid == 0) continue;
            accum* a = process_row(p.process, p.pid);
            if (a == nullptr) continue;
            if (r.kind == rule_kind::process_rss) a->gauge += double(p.rss_bytes);
            if (r.kind == rule_kind::process_fds) {
                a->gauge += double(p.open_fds);
                a->limit += double(p.fd_limit);
            }
            if (r.kind == rule_kind::process_threads) {
                a->gauge += double(p.threads);
                a->limit += double(p.threads_limit);
            }
        }
        return;
    }
    for_each_row(w, fam, [&](const row_labels& values, std::size_t i) {
        if (!selected(r, names, values)) return;
        accum& a = slot(values);
        switch (fam) {
            case family::queries: {
                const auto& q = w.queries[i];
                a.calls += q.calls;
                a.errors += q.errors;
                if (r.kind == rule_kind::latency_quantile) {
                    if (!a.sketch) a.sketch.emplace();
                    a.sketch->merge(*c.sketch(i));
                }
                break;
            }
            case family::executions:
                a.calls += w.executions[i].calls;
                a.cpu_ns += w.executions[i].cpu_ns;
                break;
            case family::heaps: {
                const auto& h = w.resources[i];
                a.gauge += double(h.heap_allocated_bytes) - double(h.heap_freed_bytes);
                break;
            }
            case family::leaks:
                a.gauge += w.leaks[i].suspected ? w.leaks[i].slope_bytes_per_second : 0.0;
                break;
            case family::pools:
                a.gauge += double(w.pools[i].waiting);
                a.calls += w.pools[i].in_use;
                a.limit += double(w.pools[i].in_use + w.pools[i].idle);
                break;
            default:
                break;
        }
    });
    if (r.kind == rule_kind::slow_rate)
        for (const auto& s : w.slow) {
            const row_labels values{s.plugin, s.op, s.table, s.tenant};
            if (selected(r, names, values)) ++slot(values).slow;
        }
}

/// Per-window group maps are kept (shared by the rules of one view until the window leaves) while
/// they fit in the cache budget; beyond it they are computed for each use and not kept, so memory
/// stays bounded whatever the rules (at the cost of evaluation time).
const window_history::group_map& window_history::groups_of(cached_window& c, const rule& r,
                                                           const std::string& view) {
    const auto found = c.views.find(view);
    if (found != c.views.end()) return found->second;
    if (!scratch_) scratch_ = std::make_shared<group_map>();
    group_map& fresh = *scratch_;
    fresh.clear();
    fill_groups(c, r, fresh);
    std::size_t bytes = 0;
    for (const auto& [key, a] : fresh) {
        bytes += sizeof(a) + key.size() * 2 + 64 * a.group.size();
        if (a.sketch) bytes += a.sketch->memory_bytes();
    }
    if (cache_bytes_ + bytes > cache_budget_) {
        ++uncached_;
        return fresh;
    }
    cache_bytes_ += bytes;
    c.bytes += bytes;
    return c.views[view] = std::move(fresh);
}

namespace {

/// The value of a merged group in the kind's unit; nullopt when it cannot be computed.
std::optional<double> value_of(const rule& r, std::uint64_t calls, std::uint64_t errors,
                               std::uint64_t slow, std::uint64_t cpu_ns, double gauge, double limit,
                               const dd_sketch* sketch, double seconds, double drops) {
    switch (r.kind) {
        case rule_kind::error_ratio:
            if (calls == 0) return std::nullopt;
            return double(errors) / double(calls);
        case rule_kind::latency_quantile:
            if (sketch == nullptr || sketch->empty()) return std::nullopt;
            return double(sketch->quantile(r.quantile)) / 1e9;
        case rule_kind::slow_rate:
            return seconds > 0 ? double(slow) / seconds : 0.0;
        case rule_kind::cpu_rate:
            return seconds > 0 ? double(cpu_ns) / 1e9 / seconds : 0.0;
        case rule_kind::heap_bytes:
        case rule_kind::heap_leak:
        case rule_kind::process_rss:
        case rule_kind::pool_waiting:
            return gauge;
        case rule_kind::process_fds:
        case rule_kind::process_threads:
            if (limit <= 0) return std::nullopt;
            return gauge / limit;
        case rule_kind::pool_utilization:
            if (limit <= 0) return std::nullopt;
            return double(calls) / limit;
        case rule_kind::ring_drops:
            return drops;
        case rule_kind::store_down:
        case rule_kind::watchdog:
            return std::nullopt;  // handled by the caller
    }
    return std::nullopt;
}

std::string view_key(const rule& r) {
    std::string key(to_string(r.kind));
    for (const auto& [k, v] : r.select) key += "\x1e" + k + "=" + v;
    key += "\x1d";
    for (const auto& g : r.group_by) key += g + "\x1e";
    return key;
}

}  // namespace

std::vector<measurement> window_history::compute(const rule& r, const live_figures& live) {
    std::vector<measurement> out;
    const family fam = family_of(r.kind);
    if (fam == family::live) {
        measurement m;
        m.known = true;
        m.samples = std::max<std::uint64_t>(r.min_samples, 1);
        m.value = r.kind == rule_kind::watchdog ? 1.0 : live.store_down_seconds;
        out.push_back(std::move(m));
        return out;
    }
    if (windows_.empty()) return out;
    const std::string view = view_key(r);
    const time_point end = now();
    std::unordered_map<std::string, accum> merged;
    double seconds = 0;
    for (auto& c : windows_) {
        if (latest_only(fam) && c != windows_.back()) continue;
        if (c->w->bucket_start + r.over < end) continue;  // starts before `over`: not whole
        seconds += std::chrono::duration<double>(c->w->length).count();
        for (const auto& [key, a] : groups_of(*c, r, view)) {
            accum& m = merged[key];
            if (m.group.empty()) m.group = a.group;
            m.merge(a);
        }
    }
    out.reserve(merged.size());
    for (auto& [key, a] : merged) {
        measurement m;
        m.key = key;
        m.group = std::move(a.group);
        const double drops = double(a.last_drops) - double(a.first_drops);
        const auto v = value_of(r, a.calls, a.errors, a.slow, a.cpu_ns, a.gauge, a.limit,
                                a.sketch ? &*a.sketch : nullptr, seconds, std::max(0.0, drops));
        m.known = v.has_value();
        m.value = v.value_or(0);
        m.samples = fam == family::queries || fam == family::executions ? a.calls : 1;
        out.push_back(std::move(m));
    }
    return out;
}

const std::vector<measurement>& window_history::measure(const rule& r, const live_figures& live) {
    std::string key = view_key(r) + "\x1c" + std::to_string(r.over.count());
    if (r.kind == rule_kind::latency_quantile) key += "q" + std::to_string(r.quantile);
    const auto it = results_.find(key);
    if (it != results_.end() && family_of(r.kind) != family::live) return it->second;
    return results_[key] = compute(r, live);
}

}  // namespace plugmon::agent::alert
