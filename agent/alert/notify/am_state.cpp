// The Alertmanager state table: coalescing events into the label sets Alertmanager must hold.
#include "alert/notify/am_state.hpp"

#include "common/unix_ns.hpp"

#include <algorithm>

namespace plugmon::agent::alert::notify {

using nlohmann::json;

bool am_table::apply(const notification& n, time_point now) {
    const auto& a = n.alert;
    auto& last = last_sequence_[a.fingerprint];
    if (n.sequence != 0 && n.sequence <= last) return false;
    last = std::max(last, n.sequence);
    const std::string prefix = a.fingerprint + "/";
    bool resolved = is_resolved(n);
    if (!resolved && a.state != alert_state::firing) return false;  // pending: never sent
    time_point resolved_at = a.resolved_at != time_point{} ? a.resolved_at : now;
    std::string key = prefix + std::string(to_string(a.level));
    for (auto it = entries_.lower_bound(prefix);
         it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
        if (it->second.ends_at) continue;
        if (resolved)
            it->second.ends_at = resolved_at;
        else if (it->first != key)
            it->second.ends_at = now;  // the old severity's label set ends here
    }
    if (resolved) {
        auto it = entries_.find(key);
        if (it != entries_.end()) it->second.annotations = annotations_with_value(a);
        return true;
    }
    entry& e = entries_[key];
    e.fingerprint = a.fingerprint;
    e.labels = labels_with_severity(a, a.level);
    e.annotations = annotations_with_value(a);
    e.annotations["plugmon_episode"] = a.episode;
    e.starts_at = a.fired_at != time_point{} ? a.fired_at : n.created;
    e.ends_at.reset();
    return true;
}

bool am_table::expire(time_point now, std::chrono::nanoseconds resolved_resend_for) {
    bool changed = false;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second.ends_at && *it->second.ends_at + resolved_resend_for < now) {
            std::string fp = it->second.fingerprint;
            it = entries_.erase(it);
            changed = true;
            // Sequences only grow, so a fingerprint with no entry left needs no memory of them.
            bool any = std::any_of(entries_.begin(), entries_.end(),
                                   [&](const auto& kv) { return kv.second.fingerprint == fp; });
            if (!any) last_sequence_.erase(fp);
        } else {
            ++it;
        }
    }
    return changed;
}

std::vector<am_alert> am_table::alerts(time_point now, std::chrono::nanoseconds resend_interval,
                                       const std::string& external_url) const {
    std::vector<am_alert> out;
    out.reserve(entries_.size());
    auto ahead = std::chrono::duration_cast<time_point::duration>(4 * resend_interval);
    for (const auto& [key, e] : entries_) {
        time_point ends = e.ends_at ? *e.ends_at : now + ahead;
        out.push_back({e.labels, e.annotations, e.starts_at, std::max(ends, e.starts_at),
                       generator_url(external_url, e.fingerprint)});
    }
    return out;
}

json am_table::to_json() const {
    json entries = json::array();
    for (const auto& [key, e] : entries_) {
        json labels = json::object(), annotations = json::object();
        for (const auto& [k, v] : e.labels) labels[k] = v;
        for (const auto& [k, v] : e.annotations) annotations[k] = v;
        entries.push_back({{"key", key},
                           {"fingerprint", e.fingerprint},
                           {"labels", labels},
                           {"annotations", annotations},
                           {"starts_at", to_unix_ns(e.starts_at)},
                           {"ends_at", e.ends_at ? json(to_unix_ns(*e.ends_at)) : json(nullptr)}});
    }
    json sequences = json::object();
    for (const auto& [fp, seq] : last_sequence_) sequences[fp] = seq;
    return {{"version", 1}, {"entries", entries}, {"sequences", sequences}};
}

am_table am_table::from_json(const json& j) {
    am_table t;
    for (const auto& e : j.at("entries")) {
        entry x;
        x.fingerprint = e.at("fingerprint").get<std::string>();
        for (const auto& [k, v] : e.at("labels").items()) x.labels[k] = v.get<std::string>();
        for (const auto& [k, v] : e.at("annotations").items())
            x.annotations[k] = v.get<std::string>();
        x.starts_at = from_unix_ns(e.at("starts_at").get<std::int64_t>());
        if (!e.at("ends_at").is_null())
            x.ends_at = from_unix_ns(e.at("ends_at").get<std::int64_t>());
        t.entries_[e.at("key").get<std::string>()] = std::move(x);
    }
    for (const auto& [fp, seq] : j.at("sequences").items())
        t.last_sequence_[fp] = seq.get<std::uint64_t>();
    return t;
}

}  // namespace plugmon::agent::alert::notify
