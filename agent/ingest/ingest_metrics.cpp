// The ingestion side's own metric families: the drain's totals, the intake's refusals and the
// plugin processes' resources, written with common/exposition.hpp.
#include "ingest/ingest_metrics.hpp"

#include "common/exposition.hpp"
#include "ingest/intake.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent {

namespace {

using namespace exposition;

// Every metric name once. Each is a literal, so data() is NUL-terminated for family().
constexpr std::string_view events_dropped_total = "plugmon_ring_events_dropped_total";
constexpr std::string_view events_folded_total = "plugmon_agent_events_folded_total";
constexpr std::string_view slow_queries_total = "plugmon_agent_slow_queries_total";
constexpr std::string_view slow_unstored_total = "plugmon_agent_slow_queries_unstored_total";
constexpr std::string_view resource_samples_total = "plugmon_agent_resource_samples_total";
constexpr std::string_view windows_total = "plugmon_agent_windows_total";
constexpr std::string_view events_drained_total = "plugmon_agent_events_drained_total";
constexpr std::string_view producers_by_state = "plugmon_producers";
constexpr std::string_view producers_registered_total = "plugmon_agent_producers_registered_total";
constexpr std::string_view ring_used_ratio = "plugmon_ring_used_ratio";
constexpr std::string_view ring_backlog = "plugmon_ring_backlog_events";
constexpr std::string_view registrations_refused_total =
    "plugmon_agent_registrations_refused_total";

/// `# HELP` and `# TYPE` lines of `name`, one of the constants above.
void head(std::string& out, std::string_view name, const char* type, const char* help) {
    family(out, name.data(), type, help);
}

/// What happened to the events: dropped by reason, folded, slow, samples, windows, drained.
void render_event_totals(std::string& out, const drain_totals& t) {
    head(out, events_dropped_total, "counter",
         "Events recorded by probes that were not aggregated, by reason.");
    sample(out, events_dropped_total, {{"reason", "full"}}, t.full.get());
    sample(out, events_dropped_total, {{"reason", "torn"}}, t.torn.get());
    sample(out, events_dropped_total, {{"reason", "invalid"}}, t.invalid.get());
    head(out, events_folded_total, "counter",
         "Events aggregated under __overflow__ labels because the series budget was reached "
         "(counted as drained too: they are not lost, only their labels are).");
    sample(out, events_folded_total, {}, t.folded.get());
    head(out, slow_queries_total, "counter",
         "Queries at or above their plugin's slow_query_threshold.");
    sample(out, slow_queries_total, {}, t.slow.get());
    head(out, slow_unstored_total, "counter",
         "Slow-query samples not handed to the store: beyond the per-window cap (still counted "
         "in plugmon_agent_slow_queries_total).");
    sample(out, slow_unstored_total, {}, t.slow_unstored.get());
    head(out, resource_samples_total, "counter",
         "Process and heap samples from the probes' helper threads (not part of drained).");
    sample(out, resource_samples_total, {}, t.resource_samples.get());
    head(out, windows_total, "counter", "Flush windows closed.");
    sample(out, windows_total, {}, t.windows.get());
    head(out, events_drained_total, "counter",
         "Events read from producer segments and aggregated.");
    sample(out, events_drained_total, {}, t.drained.get());
}

/// The producers by state, registrations, and how full their rings are.
void render_producer_totals(std::string& out, const drain_totals& t,
                            const std::vector<std::shared_ptr<producer>>& producers) {
    std::uint64_t attached = 0, quarantined = 0;
    for (const auto& p : producers) {
        if (p->live()) ++attached;
        if (p->state() == producer_state::quarantined) ++quarantined;
    }
    head(out, producers_by_state, "gauge", "Registered producer processes, by state.");
    sample(out, producers_by_state, {{"state", "attached"}}, attached);
    sample(out, producers_by_state, {{"state", "quarantined"}}, quarantined);
    head(out, producers_registered_total, "counter",
         "Producer registrations accepted (re-registrations included).");
    sample(out, producers_registered_total, {}, t.producers_registered.get());
    head(out, ring_used_ratio, "gauge", "Fill ratio of the fullest producer lane.");
    sample(out, ring_used_ratio, {}, double(t.ring_used_ppm.load()) / 1e6);
    head(out, ring_backlog, "gauge", "Events published but not yet drained.");
    sample(out, ring_backlog, {}, t.backlog.load());
}

/// One plugmon_process_* family: its name, type, help and the value of a process sample.
struct process_family {
    std::string_view name;
    const char* type;
    const char* help;
    bool seconds;  ///< the value is in ns, written in seconds
    std::uint64_t (*value)(const producer::process_resources& r);
};

const process_family process_families[] = {
    {"plugmon_process_resident_memory_bytes", "gauge", "Resident memory of the plugin process.",
     false, [](const producer::process_resources& r) { return r.rss_bytes.get(); }},
    {"plugmon_process_cpu_seconds_total", "counter",
     "CPU time (user + system) of the plugin process.", true,
     [](const producer::process_resources& r) { return r.cpu_ns.get(); }},
    {"plugmon_process_open_fds", "gauge", "Open file descriptors of the plugin process.", false,
     [](const producer::process_resources& r) { return r.open_fds.get(); }},
    {"plugmon_process_threads", "gauge", "Threads of the plugin process.", false,
     [](const producer::process_resources& r) { return r.threads.get(); }},
    {"plugmon_process_read_bytes_total", "counter", "Bytes the plugin process read from storage.",
     false, [](const producer::process_resources& r) { return r.read_bytes.get(); }},
    {"plugmon_process_write_bytes_total", "counter", "Bytes the plugin process wrote to storage.",
     false, [](const producer::process_resources& r) { return r.write_bytes.get(); }},
    {"plugmon_process_leak_suspected", "gauge",
     "1 when the process's resident memory grew steadily over leak_window, else 0.", false,
     [](const producer::process_resources& r) {
         return std::uint64_t(r.leak.suspected.load(std::memory_order_relaxed));
     }},
};

/// Room for the HELP and TYPE lines of the process families.
constexpr std::size_t process_heads_bytes = 2 * 1024;

/// A producer to export with its pid as a label value.
struct sampled_process {
    std::string pid;
    std::shared_ptr<producer> p;
};

/// The attached producers whose probe has sent at least one process sample.
std::vector<sampled_process> sampled_processes(const drain& d) {
    std::vector<sampled_process> out;
    for (auto& p : d.producers())
        if (p->live() && p->sampled()) out.push_back({std::to_string(p->pid()), std::move(p)});
    return out;
}

class process_source final : public metrics_source {
public:
    explicit process_source(const drain& d) : drain_(d) {}
    void render(metrics_text& t) const override {
        const std::vector<sampled_process> procs = sampled_processes(drain_);
        for (const process_family& f : process_families) {
            head(t.out, f.name, f.type, f.help);
            for (const sampled_process& s : procs) {
                const std::uint64_t v = f.value(s.p->resources());
                if (f.seconds)
                    sample_seconds(t.out, f.name, {{"pid", s.pid}, {"name", s.p->name()}}, v);
                else
                    sample(t.out, f.name, {{"pid", s.pid}, {"name", s.p->name()}}, v);
                t.flush_if_full();
            }
        }
    }
    /// Every registered producer counted, sampled or not: cheap, and never too small.
    std::size_t size_hint() const override {
        std::size_t bytes = process_heads_bytes;
        for (const auto& p : drain_.producers()) {
            const std::array<label, 2> labels{{{"pid", "4294967295"}, {"name", p->name()}}};
            const std::size_t line_bytes = label_prefix_size(labels) + 2 + max_double_chars + 1;
            for (const process_family& f : process_families) bytes += f.name.size() + line_bytes;
        }
        return bytes;
    }

private:
    const drain& drain_;
};

}  // namespace

void drain::render_metrics(std::string& out) const {
    render_event_totals(out, totals_);
    render_producer_totals(out, totals_, producers());
}

void intake::render_metrics(std::string& out) const {
    const intake_totals& it = totals_;
    head(out, registrations_refused_total, "counter", "Producer registrations refused, by reason.");
    for (std::size_t r = 1; r < it.rejected.size(); ++r)  // from 1: none is no refusal
        sample(out, registrations_refused_total,
               {{"reason", std::string("segment_") + to_string(reject_reason(r))}},
               it.rejected[r].get());
    sample(out, registrations_refused_total, {{"reason", "protocol"}}, it.refused_protocol.get());
    sample(out, registrations_refused_total, {{"reason", "limit"}}, it.refused_limit.get());
    sample(out, registrations_refused_total, {{"reason", "duplicate"}}, it.refused_duplicate.get());
}

std::shared_ptr<const metrics_source> make_process_metrics_source(const drain& d) {
    return std::make_shared<process_source>(d);
}

}  // namespace plugmon::agent
