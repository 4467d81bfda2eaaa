// Per-series cumulative native histograms fed from closed windows' sketches.
#include "export/prometheus/native_store.hpp"

#include "common/exposition.hpp"

#include <spdlog/spdlog.h>

namespace plugmon::agent {

namespace {

std::string key_of(std::string_view plugin, std::string_view op, std::string_view table,
                   std::string_view tenant) {
    std::string k;
    k.reserve(plugin.size() + op.size() + table.size() + tenant.size() + 3);
    k.append(plugin).push_back('\0');
    k.append(op).push_back('\0');
    k.append(table).push_back('\0');
    k.append(tenant);
    return k;
}

}  // namespace

native_store::native_store(std::int32_t schema, std::uint32_t expiry_windows)
    : schema_(schema), expiry_windows_(expiry_windows) {
    native::cumulative check(schema);  // validates the schema
}

void native_store::consume(const window_ptr& window) {
    if (!active()) return;
    std::lock_guard lock(mu_);
    ++windows_;
    for (const query_rollup& r : window->queries) {
        std::string why;
        const auto sketch = dd_sketch::try_decode(r.sketch, &why);
        if (!sketch) {
            invalid_.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("native histograms: a window's sketch does not decode: {}", why);
            continue;
        }
        auto [it, fresh] = by_key_.try_emplace(key_of(r.plugin, r.op, r.table, r.tenant),
                                               entry{native::cumulative(schema_), 0});
        it->second.hist.add(*sketch);
        it->second.last_window = windows_;
    }
    if (expiry_windows_ == 0) return;
    std::erase_if(
        by_key_, [&](const auto& e) { return windows_ - e.second.last_window >= expiry_windows_; });
}

std::optional<native::histogram> native_store::lookup(const std::string& plugin,
                                                      const std::string& op,
                                                      const std::string& table,
                                                      const std::string& tenant) const {
    const std::string k = key_of(plugin, op, table, tenant);
    std::lock_guard lock(mu_);
    const auto it = by_key_.find(k);
    if (it == by_key_.end()) return std::nullopt;
    return it->second.hist.snapshot();
}

protobuf_exposition::native_lookup native_store::query_duration_lookup() const {
    return
        [this](std::string_view family,
               const protobuf_exposition::label_pairs& labels) -> std::optional<native::histogram> {
            if (family != "plugmon_query_duration_seconds") return std::nullopt;
            const std::string* v[4] = {nullptr, nullptr, nullptr, nullptr};
            static constexpr std::string_view names[4] = {"plugin", "op", "table", "tenant"};
            for (const auto& [n, value] : labels)
                for (int i = 0; i < 4; ++i)
                    if (n == names[i]) v[i] = &value;
            for (const auto* p : v)
                if (p == nullptr) return std::nullopt;
            auto h = lookup(*v[0], *v[1], *v[2], *v[3]);
            // A series whose first window has not closed yet: an empty native histogram, so the
            // series is native from its first scrape on.
            if (!h) {
                h.emplace();
                h->schema = schema_;
            }
            return h;
        };
}

std::size_t native_store::series() const {
    std::lock_guard lock(mu_);
    return by_key_.size();
}

std::size_t native_store::histogram_bytes() const {
    std::lock_guard lock(mu_);
    std::size_t b = 0;
    for (const auto& [k, e] : by_key_) b += e.hist.memory_bytes();
    return b;
}

void native_store::render_metrics(std::string& out) const {
    using namespace exposition;
    family(out, "plugmon_agent_native_series", "gauge",
           "Query series with a cumulative native histogram (protobuf exposition of /metrics).");
    sample(out, "plugmon_agent_native_series", {}, std::uint64_t(series()));
    family(out, "plugmon_agent_native_bytes", "gauge",
           "Bytes held by the native histograms of the protobuf exposition.");
    sample(out, "plugmon_agent_native_bytes", {}, std::uint64_t(histogram_bytes()));
    family(out, "plugmon_agent_native_sketches_invalid_total", "counter",
           "Window sketches that did not decode and were left out of the native histograms.");
    sample(out, "plugmon_agent_native_sketches_invalid_total", {},
           invalid_.load(std::memory_order_relaxed));
}

}  // namespace plugmon::agent
