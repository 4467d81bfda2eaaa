// Reload without a gap: the parts of the running agent that take new settings live register a
// step each; a reload validates the whole new configuration, then applies every step, or none.
#pragma once

#include "config/config.hpp"
#include "web/api/api.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace plugmon::agent {

/// One part of the agent that takes some keys live.
struct reload_step {
    std::string name;               ///< for the log: "series", "store", "http security", ...
    std::vector<std::string> keys;  ///< the keys it applies; "name." covers "name.<anything>"
    /// Checks `fresh` for this part and keeps what apply() will swap in; throws (a config_error
    /// names the key) to refuse the whole reload. Empty: nothing to check.
    std::function<void(const config& fresh)> prepare;
    /// Swaps the prepared settings in (required). Must not throw: it runs after every prepare
    /// succeeded.
    std::function<void(const config& fresh)> apply;
};

/// The reload protocol. A reload prepares every step (any failure refuses the reload and
/// changes nothing), applies every step, and reports the changed keys: those some step applies,
/// and those that apply only at the next start (listen address, runtime directory, buckets, ...),
/// which are logged as such, never silently ignored. Thread safety: reload() from any thread
/// (reloads are serialised); render_metrics() from any thread.
class reloader {
public:
    /// `started`: the configuration the agent started with (its first success).
    explicit reloader(config started);
    void add(reload_step step);
    /// Applies `fresh`. Reported as applied: live keys that differ from the last configuration
    /// applied; as restart_required: other keys that differ from what the agent started with
    /// (so a pending restart is reported again by every reload until it happens).
    reload_report reload(const config& fresh);
    /// The refusal of a file that did not even parse (config_error from the command line or the
    /// file): counted and reported like any other refusal.
    reload_report refuse(const std::string& why);
    /// plugmon_config_last_reload_successful, plugmon_config_last_reload_success_timestamp_seconds,
    /// plugmon_config_reloads_total{result}.
    void render_metrics(std::string& out) const;

private:
    bool live(const std::string& key) const;
    std::mutex mu_;
    std::vector<reload_step> steps_;  // guarded by mu_
    const config started_;
    config last_applied_;  // guarded by mu_
    std::atomic<bool> last_ok_{true};
    std::atomic<std::int64_t> last_success_unix_ns_{0};
    std::atomic<std::uint64_t> applied_{0}, refused_{0};
};

}  // namespace plugmon::agent
