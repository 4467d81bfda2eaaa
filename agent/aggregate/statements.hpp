// Statements and slow queries: totals per (plugin, statement fingerprint), written by the drain
// thread with single-writer cells, and a bounded ring of the most recent slow-query samples.
#pragma once

#include "aggregate/series.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace plugmon::agent {

/// Totals of one normalised statement as run by one plugin.
struct statement_stats {
    statement_stats(std::string pl, std::string t, std::uint64_t fp)
        : plugin(std::move(pl)), text(std::move(t)), fingerprint(fp) {}
    std::string plugin, text;
    std::uint64_t fingerprint;
    cell calls, errors, rows, total_ns, max_ns, slow;
};

class statement_book {
public:
    /// `max_statements` bounds the (plugin, statement) pairs held; beyond it a plugin's further
    /// statements fold into one "__overflow__" entry (fingerprint 0), still counted.
    statement_book(std::size_t max_samples, std::size_t max_statements = 10000);

    /// Drain thread: the entry of (plugin, statement), created on first use.
    statement_stats* find_or_create(const std::string& plugin, const std::string& text,
                                    std::uint64_t fingerprint);
    /// Drain thread: one query of the entry (duration in ns).
    static void record(statement_stats& s, std::uint64_t duration_ns, std::uint64_t rows,
                       bool error, bool slow) {
        s.calls.add(1);
        s.errors.add(error);
        s.rows.add(rows);
        s.total_ns.add(duration_ns);
        if (duration_ns > s.max_ns.get()) s.max_ns.set(duration_ns);
        s.slow.add(slow);
    }
    /// Drain thread: keeps a slow sample (the oldest goes when the ring is full).
    void add_slow(slow_sample s);

    /// The most recent slow samples, newest first, optionally of one plugin.
    std::vector<slow_sample> recent(const std::string* plugin, std::size_t limit) const;
    /// Each plugin's statements by total time, at most `per_plugin` each.
    std::vector<std::shared_ptr<const statement_stats>> top(const std::string* plugin,
                                                            std::size_t per_plugin) const;
    std::uint64_t slow_total() const { return slow_total_.get(); }
    std::size_t size() const;

private:
    std::size_t max_samples_, max_statements_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<statement_stats>> by_key_;  // guarded by mu_
    std::deque<slow_sample> samples_;                                           // guarded by mu_
    cell slow_total_;
};

}  // namespace plugmon::agent
