// What a rule measures over its `over`: the recent closed windows, grouped by the rule's labels.
// Rules that share a kind family, a selector and a grouping share the work (a fleet of rules that
// differ only in thresholds costs one pass over the windows).
#pragma once

#include "alert/model.hpp"
#include "pipeline/window_sink.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace plugmon::agent::alert {

/// One group's figure for one rule: the value in the kind's unit, and the samples behind it.
struct measurement {
    std::string key;  ///< the group's values joined (unique within the rule)
    label_set group;  ///< the group_by labels and their values
    double value = 0;
    std::uint64_t samples = 0;
    bool known = false;  ///< false: the figure cannot be computed (no limit known, empty pool)
};

/// The key measure() gives the group whose group_by labels are in `labels`.
std::string group_key_of(const rule& r, const label_set& labels);

/// The closed windows of the last `keep` and the per-group figures of each rule over them.
///
/// Thread safety: none; the engine's thread owns it.
class window_history {
public:
    /// Figures the windows do not carry, supplied by the agent.
    struct live_figures {
        double store_down_seconds = 0;  ///< 0: the store writes (or none is configured)
    };

    /// `cache_budget`: the most the per-window group maps may hold (bytes, estimated).
    explicit window_history(nanoseconds keep, std::size_t cache_budget = std::size_t(256) << 20)
        : keep_(keep), cache_budget_(cache_budget) {}
    /// Appends a closed window and forgets those older than `keep` before it.
    void add(window_ptr w);
    /// The end of the newest window (epoch when none).
    time_point now() const;
    /// The groups of rule `r` over its `over`, merged from whole windows only. Results are
    /// shared with the other rules of the same view until the next add().
    const std::vector<measurement>& measure(const rule& r, const live_figures& live);
    std::size_t windows() const { return windows_.size(); }
    /// Bytes the cached group maps hold, and how often one did not fit (computed, not kept).
    std::size_t cache_bytes() const { return cache_bytes_; }
    std::uint64_t uncached() const { return uncached_; }

private:
    struct accum;
    struct cached_window;
    using group_map = std::unordered_map<std::string, accum>;

    const group_map& groups_of(cached_window& w, const rule& r, const std::string& view);
    void fill_groups(cached_window& w, const rule& r, group_map& out);
    std::vector<measurement> compute(const rule& r, const live_figures& live);

    nanoseconds keep_;
    std::size_t cache_budget_, cache_bytes_ = 0;
    std::uint64_t uncached_ = 0;
    /// A group map that did not fit the budget, until the next call (shared_ptr: accum is
    /// complete only in measure.cpp).
    std::shared_ptr<group_map> scratch_;
    std::deque<std::shared_ptr<cached_window>> windows_;
    std::unordered_map<std::string, std::vector<measurement>> results_;  ///< until the next add
};

}  // namespace plugmon::agent::alert
