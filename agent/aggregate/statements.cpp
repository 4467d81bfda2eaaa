// Statement totals and the slow-query ring (see statements.hpp).
#include "aggregate/statements.hpp"

#include <plugmon/layout.hpp>

#include <algorithm>
#include <map>

namespace plugmon::agent {

statement_book::statement_book(std::size_t max_samples, std::size_t max_statements)
    : max_samples_(std::max<std::size_t>(max_samples, 1)), max_statements_(max_statements) {}

statement_stats* statement_book::find_or_create(const std::string& plugin, const std::string& text,
                                                std::uint64_t fingerprint) {
    std::string key = plugin;
    key.push_back('\0');
    key.append(reinterpret_cast<const char*>(&fingerprint), sizeof fingerprint);
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = by_key_.find(key); it != by_key_.end()) return it->second.get();
    std::shared_ptr<statement_stats> s;
    if (by_key_.size() >= max_statements_) {
        key.resize(plugin.size() + 1);  // the plugin's fold entry: fingerprint 0
        const std::uint64_t zero = 0;
        key.append(reinterpret_cast<const char*>(&zero), sizeof zero);
        if (auto it = by_key_.find(key); it != by_key_.end()) return it->second.get();
        s = std::make_shared<statement_stats>(plugin, layout::overflow_label, 0);
    } else {
        s = std::make_shared<statement_stats>(plugin, text, fingerprint);
    }
    statement_stats* raw = s.get();
    by_key_.emplace(std::move(key), std::move(s));
    return raw;
}

void statement_book::add_slow(slow_sample s) {
    slow_total_.add(1);
    std::lock_guard<std::mutex> lock(mu_);
    if (samples_.size() >= max_samples_) samples_.pop_front();
    samples_.push_back(std::move(s));
}

std::vector<slow_sample> statement_book::recent(const std::string* plugin,
                                                std::size_t limit) const {
    std::vector<slow_sample> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = samples_.rbegin(); it != samples_.rend() && out.size() < limit; ++it)
        if (plugin == nullptr || it->plugin == *plugin) out.push_back(*it);
    return out;
}

std::vector<std::shared_ptr<const statement_stats>> statement_book::top(
    const std::string* plugin, std::size_t per_plugin) const {
    std::map<std::string, std::vector<std::shared_ptr<const statement_stats>>> by_plugin;
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [key, s] : by_key_)
            if (plugin == nullptr || s->plugin == *plugin) by_plugin[s->plugin].push_back(s);
    }
    std::vector<std::shared_ptr<const statement_stats>> out;
    for (auto& [name, list] : by_plugin) {
        const std::size_t n = std::min(per_plugin, list.size());
        std::partial_sort(list.begin(), list.begin() + std::ptrdiff_t(n), list.end(),
                          [](const auto& a, const auto& b) {
                              return a->total_ns.get() != b->total_ns.get()
                                         ? a->total_ns.get() > b->total_ns.get()
                                         : a->fingerprint < b->fingerprint;
                          });
        out.insert(out.end(), list.begin(), list.begin() + std::ptrdiff_t(n));
    }
    return out;
}

std::size_t statement_book::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return by_key_.size();
}

}  // namespace plugmon::agent
