// The reload protocol: prepare every step, apply every step, report what changed.
#include "app/reload.hpp"

#include "common/exposition.hpp"
#include "common/unix_ns.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <map>
#include <utility>

namespace plugmon::agent {

namespace {

/// The keys whose value differs between `a` and `b` (a key given several times compares as the
/// list of its values), in key-table order.
std::vector<std::string> changed_keys(const config& a, const config& b) {
    const auto values = [](const config& c) {
        std::vector<std::string> order;
        std::map<std::string, std::vector<std::string>> by_key;
        for (auto& [key, value] : describe_values(c)) {
            auto& list = by_key[key];
            if (list.empty()) order.push_back(key);
            list.push_back(std::move(value));
        }
        return std::make_pair(std::move(order), std::move(by_key));
    };
    const auto [order_a, by_a] = values(a);
    auto [order_b, by_b] = values(b);
    for (const auto& key : order_a)
        if (by_b.count(key) == 0) order_b.push_back(key);  // gone from the new configuration
    std::vector<std::string> out;
    for (const auto& key : order_b) {
        const auto ia = by_a.find(key);
        const auto ib = by_b.find(key);
        if (ia == by_a.end() || ib == by_b.end() || ia->second != ib->second) out.push_back(key);
    }
    return out;
}

std::string joined(const std::vector<std::string>& keys) {
    std::string s;
    for (const auto& k : keys) s += (s.empty() ? "" : ", ") + k;
    return s;
}

}  // namespace

reloader::reloader(config started) : started_(std::move(started)), last_applied_(started_) {
    last_success_unix_ns_.store(to_unix_ns(std::chrono::system_clock::now()));
}

void reloader::add(reload_step step) {
    std::lock_guard<std::mutex> lock(mu_);
    steps_.push_back(std::move(step));
}

bool reloader::live(const std::string& key) const {
    for (const auto& s : steps_)
        for (const auto& k : s.keys)
            if (key == k || (k.ends_with('.') && key.starts_with(k))) return true;
    return false;
}

reload_report reloader::refuse(const std::string& why) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    last_ok_.store(false, std::memory_order_relaxed);
    spdlog::error("reload refused, keeping the running configuration: {}", why);
    reload_report r;
    r.error = why;
    return r;
}

reload_report reloader::reload(const config& fresh) {
    std::lock_guard<std::mutex> lock(mu_);
    try {
        for (const auto& s : steps_)
            if (s.prepare) s.prepare(fresh);
    } catch (const std::exception& e) {
        return refuse(e.what());
    }
    for (const auto& s : steps_) {
        try {
            s.apply(fresh);
        } catch (const std::exception& e) {  // a bug: the others apply all the same
            spdlog::critical("reload: step {} failed to apply (apply must not throw): {}", s.name,
                             e.what());
        }
    }
    reload_report r;
    for (auto& key : changed_keys(last_applied_, fresh))
        if (live(key)) r.applied.push_back(std::move(key));
    for (auto& key : changed_keys(started_, fresh))
        if (!live(key)) r.restart_required.push_back(std::move(key));
    last_applied_ = fresh;
    applied_.fetch_add(1, std::memory_order_relaxed);
    last_ok_.store(true, std::memory_order_relaxed);
    last_success_unix_ns_.store(to_unix_ns(std::chrono::system_clock::now()),
                                std::memory_order_relaxed);
    spdlog::info("configuration reloaded; changed and applied: {}",
                 r.applied.empty() ? "nothing" : joined(r.applied));
    if (!r.restart_required.empty())
        spdlog::warn("configuration reloaded; changed but applied only at the next start: {}",
                     joined(r.restart_required));
    return r;
}

void reloader::render_metrics(std::string& out) const {
    namespace ex = exposition;
    ex::family(out, "plugmon_config_last_reload_successful", "gauge",
               "Whether the last configuration reload succeeded (1) or was refused (0).");
    ex::sample(out, "plugmon_config_last_reload_successful", {},
               std::uint64_t(last_ok_.load(std::memory_order_relaxed) ? 1 : 0));
    ex::family(out, "plugmon_config_last_reload_success_timestamp_seconds", "gauge",
               "When the configuration was last applied (start or reload), Unix seconds.");
    ex::sample(out, "plugmon_config_last_reload_success_timestamp_seconds", {},
               double(last_success_unix_ns_.load(std::memory_order_relaxed)) / 1e9);
    ex::family(out, "plugmon_config_reloads_total", "counter",
               "Configuration reloads (SIGHUP, POST /-/reload) by result.");
    ex::sample(out, "plugmon_config_reloads_total", {{"result", "applied"}},
               applied_.load(std::memory_order_relaxed));
    ex::sample(out, "plugmon_config_reloads_total", {{"result", "refused"}},
               refused_.load(std::memory_order_relaxed));
}

}  // namespace plugmon::agent
